"""DMIX (DFAC framework, Sun, Lee, Lee 2021: distributional QMIX) on RLlib's new API stack, and DMIX-DA, its IGM-DA
mode.

Each agent outputs N quantiles of its return for every action, Z_i(o_i, a) (levels τ_k = (2k − 1)/2N); the
``QuantileMixture`` mixes their means with QMIX's monotone mixer and their shapes with a non-negative state-weighted
sum, giving N quantiles of Z_tot(S, a). Trained by QR-DQN's quantile Huber loss against r + γ(1 − d)·Z_tot^target(S',
a*), a* greedy in the agents' means (``dmix_learner.py``). Acting is greedy (ε-greedy) in the means.
"""
from typing import Any, Dict, Optional, Type, Union

import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.utils import set_provided
from rllib_mil.algorithms.value_decomposition.vd import ValueDecomposition, ValueDecompositionConfig
from rllib_mil.algorithms.value_decomposition.vd_rl_module import ValueDecompositionModule
from rllib_mil.modules.mixers import QuantileMixture


class DMIXConfig(ValueDecompositionConfig):
    """Configuration of DMIX: ValueDecompositionConfig's settings plus ``n_quantiles`` and ``huber_kappa``."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DMIX)
        # Quantiles per action and agent (DFAC's DMIX uses 8 on SMAC with IQN; fixed QR-DQN levels here).
        self.n_quantiles = 8
        # Threshold kappa of the quantile Huber loss.
        self.huber_kappa = 1.0

    @override(AlgorithmConfig)
    def training(self, *, n_quantiles: Optional[int] = NotProvided, huber_kappa: Optional[float] = NotProvided,
                 **kwargs):
        super().training(**kwargs)
        set_provided(self, n_quantiles=n_quantiles, huber_kappa=huber_kappa)
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.n_quantiles, int) and self.n_quantiles >= 1):
            self._value_error(f"`n_quantiles` must be an integer >= 1, got {self.n_quantiles!r}.")
        if not (isinstance(self.huber_kappa, (int, float)) and self.huber_kappa > 0):
            self._value_error(f"`huber_kappa` must be a number > 0, got {self.huber_kappa!r}.")

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {"n_quantiles": self.n_quantiles}

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DMIXTorchRLModule, model_config=self.model_config)

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.dmix.dmix_learner import DMIXTorchLearner

        return DMIXTorchLearner


class DMIXDAConfig(DMIXConfig):
    """DMIX-DA: DMIX's expert agents on the global state, learner agents on local observations (IGM-DA)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DMIXDA)
        self.igm_da = True


class DMIXTorchRLModule(ValueDecompositionModule):
    def make_mixer(self):
        mc = self.model_config
        return QuantileMixture(self.n_agents, self.state_dim, embed_dim=mc["mixer_embed_dim"],
                               hypernet_hidden=mc["hypernet_hidden"])

    def td_out_dim(self) -> int:
        return self.n_actions * self.model_config["n_quantiles"]

    def quantiles(self, out: torch.Tensor) -> torch.Tensor:
        """TD net outputs ``(..., A·N)`` -> ``(..., A, N)``."""
        return out.view(*out.shape[:-1], self.n_actions, self.model_config["n_quantiles"])

    def td_scores(self, out: torch.Tensor) -> torch.Tensor:
        return self.quantiles(out).mean(dim=-1)  # (..., A, N) -> (..., A): expected return per action

    def quantile_levels(self, device=None) -> torch.Tensor:
        N = self.model_config["n_quantiles"]
        return (2 * torch.arange(N, device=device, dtype=torch.float32) + 1) / (2 * N)  # (N,): τ_k = (2k+1)/2N


class DMIX(ValueDecomposition):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> DMIXConfig:
        return DMIXConfig()


class DMIXDA(DMIX):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> DMIXDAConfig:
        return DMIXDAConfig()
