"""rllib-mil: cooperative multi-agent imitation learning on RLlib's new API stack.

Importing the package registers the team-env ids (``mpe/simple_spread``, ...) with Ray and the algorithm
names (``MIFQ``, ``IIQ``, ``IQVDN``) as Tune trainables.
"""

__version__ = "0.1.0"


def _register() -> None:
    from rllib_mil.algorithms.registry import register_with_tune
    from rllib_mil.envs.registry import register_with_ray

    register_with_ray()
    register_with_tune()


_register()
