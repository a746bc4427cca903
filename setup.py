from setuptools import find_packages, setup

setup(
    name="rllib-mil",
    version="0.1.0",
    description="Cooperative multi-agent imitation learning (MIFQ, MAMQL, IGM-DA) as an RLlib plugin",
    packages=find_packages(include=["rllib_mil", "rllib_mil.*"]),
    python_requires=">=3.10",
    install_requires=[
        # torch is installed first, pinned (torch==2.13.0): a loose torch requirement pulls a multi-GB CUDA build.
        "torch==2.13.0",
        "ray[rllib]==2.60.0",
        "mpe2>=1.1",
        "gymnasium>=1.0",
        "pyarrow>=14",
        "pandas>=2",
        "pyyaml>=6",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
    ],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout>=2"],
        "smax": ["jaxmarl>=0.2"],
    },
    entry_points={"console_scripts": ["rllib=rllib_mil.cli:main"]},
    include_package_data=True,
)
