"""rllib-mil: cooperative multi-agent imitation learning on RLlib's new API stack.

Importing the package registers the team-env ids (``mpe/simple_spread``, ...) with Ray and the algorithm
names (``MIFQ``, ``IIQ``, ``IQVDN``, ``BC``, ``MASQIL``, ``MAPPO``) as Tune trainables.
"""

__version__ = "0.1.0"


def _register() -> None:
    from rllib_mil.algorithms.registry import register_with_tune
    from rllib_mil.data.experts import set_checkpoint_loader
    from rllib_mil.envs.registry import register_with_ray
    from rllib_mil.evaluation import expert_from_arg

    register_with_ray()
    register_with_tune()
    # The data layer loads checkpoint experts through this hook instead of importing the layers above it.
    set_checkpoint_loader(expert_from_arg)


_register()
