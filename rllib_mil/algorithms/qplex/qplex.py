"""QPLEX (Wang et al. 2021, duplex dueling) on RLlib's new API stack, and QPLEX-DA, its IGM-DA mode.

Q_tot(S, a) = Σ_i V_i + Σ_i λ_i(S, a)·A_i with the agents' values transformed by positive state-conditioned
weights, V_i = max_a Q_i and λ_i > 0 (``DuplexMixer``): the joint argmax is the agents' argmaxes for any λ (IGM
with both directions). Trained by the TD loss with double-Q targets (``qplex_learner.py``); the rest is shared with
QMIX and DMIX (``rllib_mil/algorithms/value_decomposition``).
"""
from typing import Any, Dict, Optional, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.utils import set_provided
from rllib_mil.algorithms.value_decomposition.vd import ValueDecomposition, ValueDecompositionConfig
from rllib_mil.algorithms.value_decomposition.vd_rl_module import ValueDecompositionModule
from rllib_mil.modules.mixers import DuplexMixer


class QPLEXConfig(ValueDecompositionConfig):
    """Configuration of QPLEX: ValueDecompositionConfig's settings plus ``qplex_heads``."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or QPLEX)
        # Heads of the λ_i(S, a) weights (QPLEX's multi-head attention; PyMARL's num_kernel = 4).
        self.qplex_heads = 4

    @override(AlgorithmConfig)
    def training(self, *, qplex_heads: Optional[int] = NotProvided, **kwargs):
        super().training(**kwargs)
        set_provided(self, qplex_heads=qplex_heads)
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.qplex_heads, int) and self.qplex_heads >= 1):
            self._value_error(f"`qplex_heads` must be an integer >= 1, got {self.qplex_heads!r}.")

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {"qplex_heads": self.qplex_heads}

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=QPLEXTorchRLModule, model_config=self.model_config)

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.qplex.qplex_learner import QPLEXTorchLearner

        return QPLEXTorchLearner


class QPLEXDAConfig(QPLEXConfig):
    """QPLEX-DA: QPLEX's expert agents on the global state, learner agents on local observations (IGM-DA)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or QPLEXDA)
        self.igm_da = True


class QPLEXTorchRLModule(ValueDecompositionModule):
    def make_mixer(self):
        mc = self.model_config
        return DuplexMixer(self.n_agents, self.state_dim, self.n_actions, hypernet_hidden=mc["hypernet_hidden"],
                           n_heads=mc["qplex_heads"])


class QPLEX(ValueDecomposition):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> QPLEXConfig:
        return QPLEXConfig()


class QPLEXDA(QPLEX):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> QPLEXDAConfig:
        return QPLEXDAConfig()
