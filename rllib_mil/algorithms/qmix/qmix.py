"""QMIX (Rashid et al. 2018) on RLlib's new API stack, and QMIX-DA, its IGM-DA mode (Hong, Jin, Tang).

Q_tot(S, a) = M(Q_1(o_1, a_1), ..., Q_n(o_n, a_n); S), with M the monotonic hypernetwork mixer
ELU(Q·|W1(S)| + b1(S))·|W2(S)| + V(S) (``HyperMonotoneMixer`` with biases, no normalisation), trained by the TD
loss with double-Q targets from target agents and a target mixer (``qmix_learner.py``). Sampling, replay, IGM-DA
and the metrics are shared with QPLEX and DMIX (``rllib_mil/algorithms/value_decomposition``).
"""
from typing import Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.value_decomposition.vd import ValueDecomposition, ValueDecompositionConfig
from rllib_mil.algorithms.value_decomposition.vd_rl_module import ValueDecompositionModule
from rllib_mil.modules.mixers import HyperMonotoneMixer


class QMIXConfig(ValueDecompositionConfig):
    """Configuration of QMIX; every setting is ValueDecompositionConfig's (``mixer_embed_dim``, ``hypernet_hidden``
    size the mixer).

    Example:
        >>> from rllib_mil.algorithms.qmix import QMIXConfig
        >>> config = QMIXConfig().environment("smax/3m").env_runners(num_env_runners=2)
        >>> algo = config.build_algo()   # doctest: +SKIP
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or QMIX)

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=QMIXTorchRLModule, model_config=self.model_config)

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.qmix.qmix_learner import QMIXTorchLearner

        return QMIXTorchLearner


class QMIXDAConfig(QMIXConfig):
    """QMIX-DA: QMIX's expert agents on the global state, learner agents on local observations (IGM-DA)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or QMIXDA)
        self.igm_da = True


class QMIXTorchRLModule(ValueDecompositionModule):
    def make_mixer(self):
        mc = self.model_config
        return HyperMonotoneMixer(self.n_agents, self.state_dim, embed_dim=mc["mixer_embed_dim"],
                                  hypernet_hidden=mc["hypernet_hidden"], normalize=False, bias=True)


class QMIX(ValueDecomposition):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> QMIXConfig:
        return QMIXConfig()


class QMIXDA(QMIX):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> QMIXDAConfig:
        return QMIXDAConfig()
