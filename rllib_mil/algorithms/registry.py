"""Registry of the algorithms this package provides: name -> (Algorithm class, Config class).

Families, because they are tested differently: ``IMITATION`` algorithms learn from demonstrations
(``expert_data``; tests/test_imitation.py loops over all of them, benchmarks/table1.py measures all of them), ``INVERSE_Q`` is the inverse soft-Q subset
(MIFQ and its ablations, online with replay rows in the loss; tests/test_algorithms.py), ``RL`` algorithms learn
from the env reward (MAPPO trains the experts; tests/test_rl_algorithms.py), ``VALUE_DECOMPOSITION`` are the
value-based RL algorithms with mixers and their IGM-DA mode (tests/test_value_decomposition.py). A new algorithm is tested by being
registered here.
"""

from typing import Dict, Tuple, Type

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from rllib_mil.algorithms.bc.bc import BC, BCConfig
from rllib_mil.algorithms.magail.magail import MAGAIL, MAGAILConfig
from rllib_mil.algorithms.mamql.mamql import MAMQL, MAMQLConfig
from rllib_mil.algorithms.mappo.mappo import MAPPO, MAPPOConfig
from rllib_mil.algorithms.masqil.masqil import MASQIL, MASQILConfig
from rllib_mil.algorithms.mifq.mifq import IIQ, IQVDN, MIFQ, IIQConfig, IQVDNConfig, MIFQConfig
from rllib_mil.algorithms.qmix.qmix import QMIX, QMIXDA, QMIXConfig, QMIXDAConfig
from rllib_mil.algorithms.qplex.qplex import QPLEX, QPLEXDA, QPLEXConfig, QPLEXDAConfig
from rllib_mil.algorithms.dmix.dmix import DMIX, DMIXDA, DMIXConfig, DMIXDAConfig

Entry = Tuple[Type[Algorithm], Type[AlgorithmConfig]]

INVERSE_Q: Dict[str, Entry] = {
    "MIFQ": (MIFQ, MIFQConfig),
    "IIQ": (IIQ, IIQConfig),
    "IQVDN": (IQVDN, IQVDNConfig),
    "MAMQL": (MAMQL, MAMQLConfig),
}
IMITATION: Dict[str, Entry] = {
    **INVERSE_Q,
    "BC": (BC, BCConfig),
    "MASQIL": (MASQIL, MASQILConfig),
    "MAGAIL": (MAGAIL, MAGAILConfig),
}
RL: Dict[str, Entry] = {
    "MAPPO": (MAPPO, MAPPOConfig),
}
# Value-decomposition RL (tests/test_value_decomposition.py) and their IGM-DA mode (the "-DA" names: expert agents
# on the global state, learner agents on local observations trained by DAgger).
VALUE_DECOMPOSITION: Dict[str, Entry] = {
    "QMIX": (QMIX, QMIXConfig),
    "QPLEX": (QPLEX, QPLEXConfig),
    "DMIX": (DMIX, DMIXConfig),
    "QMIX-DA": (QMIXDA, QMIXDAConfig),
    "QPLEX-DA": (QPLEXDA, QPLEXDAConfig),
    "DMIX-DA": (DMIXDA, DMIXDAConfig),
}
ALGORITHMS: Dict[str, Entry] = {**IMITATION, **RL, **VALUE_DECOMPOSITION}


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
