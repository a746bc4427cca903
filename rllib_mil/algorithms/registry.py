"""Registry of the algorithms this package provides: name -> (Algorithm class, Config class).

Tests loop over this registry, so a new algorithm is tested by being registered here.
"""

from typing import Dict, Tuple, Type

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from rllib_mil.algorithms.mifq.mifq import IIQ, IQVDN, MIFQ, IIQConfig, IQVDNConfig, MIFQConfig

ALGORITHMS: Dict[str, Tuple[Type[Algorithm], Type[AlgorithmConfig]]] = {
    "MIFQ": (MIFQ, MIFQConfig),
    "IIQ": (IIQ, IIQConfig),
    "IQVDN": (IQVDN, IQVDNConfig),
}


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
