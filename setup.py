from setuptools import find_packages, setup

SMAX = ["jaxmarl==0.2.0", "jax==0.10.2", "jaxlib==0.10.2"]
SMACV2_COMMIT = "577ab5a2cff2391f8df582da5731ea9cd6adf3c6"  # oxwhirl/smacv2 main, 2024-02-15

setup(
    name="rllib-mil",
    version="0.1.0",
    description="Cooperative multi-agent imitation learning (MIFQ, MAMQL, IGM-DA) as an RLlib plugin",
    packages=find_packages(include=["rllib_mil", "rllib_mil.*"]),
    python_requires=">=3.10",
    install_requires=[
        # torch is installed first, pinned (torch==2.13.0): a loose torch requirement pulls a multi-GB CUDA build.
        "torch==2.13.0",
        "ray[default,rllib]==2.60.0",
        "mpe2>=1.1",
        "gymnasium>=1.0",
        "pyarrow>=14",
        "pandas>=2",
        "pyyaml>=6",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
    ],
    extras_require={
        # SMAX (JaxMARL's StarCraft-like simulator, runs anywhere); the versions the tests ran with.
        "smax": SMAX,
        # SMACv2 needs StarCraft II too (cluster/Dockerfile). smacv2 is not on the package index and pins
        # protobuf<3.21; ray 2.60 runs with protobuf 3.20.3.
        "smacv2": [f"smacv2 @ git+https://github.com/oxwhirl/smacv2.git@{SMACV2_COMMIT}", "protobuf==3.20.3"],
        # Everything the test suite needs (SMAX included; SMACv2 runs against a contract fake).
        # jsonschema: the KubeRay manifests against the CRD schemas; psutil: tearing down the test's own Ray cluster.
        "dev": ["pytest>=8", "pytest-timeout>=2", "jsonschema>=4", "psutil>=5", *SMAX],
    },
    entry_points={"console_scripts": ["rllib=rllib_mil.cli:main"]},
    include_package_data=True,
)
