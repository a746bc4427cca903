"""Registry of the algorithms this package provides: name -> (Algorithm class, Config class).

Two families, because they are tested differently: ``IMITATION`` algorithms learn from demonstrations
(``expert_data``), ``RL`` algorithms from the env reward (MAPPO trains the experts). Tests loop over each
family (tests/test_algorithms.py, tests/test_rl_algorithms.py), so a new algorithm is tested by being
registered here.
"""

from typing import Dict, Tuple, Type

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from rllib_mil.algorithms.mappo.mappo import MAPPO, MAPPOConfig
from rllib_mil.algorithms.mifq.mifq import IIQ, IQVDN, MIFQ, IIQConfig, IQVDNConfig, MIFQConfig

Entry = Tuple[Type[Algorithm], Type[AlgorithmConfig]]

IMITATION: Dict[str, Entry] = {
    "MIFQ": (MIFQ, MIFQConfig),
    "IIQ": (IIQ, IIQConfig),
    "IQVDN": (IQVDN, IQVDNConfig),
}
RL: Dict[str, Entry] = {
    "MAPPO": (MAPPO, MAPPOConfig),
}
ALGORITHMS: Dict[str, Entry] = {**IMITATION, **RL}


def get_algorithm(name: str) -> Tuple[Type[Algorithm], Type[AlgorithmConfig]]:
    """(Algorithm class, Config class) for a registered name; RLlib's own algorithms are found too."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    try:
        from ray.rllib.algorithms.registry import get_algorithm_class

        algo_cls = get_algorithm_class(name)
        return algo_cls, type(algo_cls.get_default_config())
    except Exception:
        raise ValueError(
            f"Unknown algorithm {name!r}. rllib-mil provides {sorted(ALGORITHMS)}; RLlib's own names "
            "(e.g. PPO, DQN) work too."
        ) from None


def register_with_tune() -> None:
    """Register every algorithm name as a Tune trainable (idempotent)."""
    from ray import tune

    for name, (algo_cls, _) in ALGORITHMS.items():
        tune.register_trainable(name, algo_cls)
