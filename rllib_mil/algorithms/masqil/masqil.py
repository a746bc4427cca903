"""MASQIL: SQIL for cooperative teams (a baseline of the MIFQ paper, §5.3), on the same machinery as MIFQ.

Online by construction: each update joins `expert_batch_size` expert rows (reward 1) with
`train_batch_size_per_learner` replay rows of the agents' own Boltzmann rollouts (reward 0), balanced 64/64 by
default, and minimises the soft TD error of the mixed joint value (``masqil_loss.py``) with a target Q network and
a target mixer. Rollouts, replay, expert data, recurrent agents and evaluation are MIFQ's; only the loss differs.
The inverse-soft-Q options of ``MIFQConfig`` (value_rows, chi2_replay, value_next, bc_coef, grad_penalty) do not
apply and must keep their defaults.
"""
from typing import Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.learner import Learner
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.mifq.mifq import MIFQ, MIFQConfig
from rllib_mil.algorithms.mifq.mifq_rl_module import MIFQTorchRLModule

# MIFQConfig settings MASQIL does not use, with the value they must keep.
IQ_ONLY = {"value_rows": "all", "chi2_replay": True, "value_next": "target", "bc_coef": 0.0, "grad_penalty": 0.0}


class MASQILConfig(MIFQConfig):
    """Configuration of MASQIL (MIFQConfig's settings; rewards 1 expert / 0 replay replace eq. 9)."""

    offline_capable = False

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MASQIL)
        # SQIL's balanced batches: as many expert rows as replay rows per update.
        self.expert_batch_size = 64
        self.train_batch_size_per_learner = 64
        # SQIL's policy is softmax(Q/alpha): no behaviour-cloning prior (MIFQConfig.policy_prior).
        self.policy_prior = None
        # No offline warm start (MIFQConfig.pretrain_offline_updates): expert rows alone carry no contrast.
        self.pretrain_offline_updates = 0

    @override(MIFQConfig)
    def validate(self) -> None:
        super().validate()
        if self.offline or self.pretrain_offline_updates:
            self._value_error(
                "MASQIL learns from the contrast between expert rows (reward 1) and the agents' own replay rows "
                "(reward 0): it cannot run offline. Set offline=False and pretrain_offline_updates=0, or use BC / "
                "MIFQ with offline=True.")
        if self.mixer not in ("mifq", "vdn"):
            self._value_error(f"MASQIL mixes the agents' Q values: `mixer` must be 'mifq' or 'vdn', got {self.mixer!r}.")
        if not self.mixer_shared:
            self._value_error("MASQIL has one mixer (for Q^tot and V^tot): set mixer_shared=True.")
        changed = {k: getattr(self, k) for k, v in IQ_ONLY.items() if getattr(self, k) != v}
        if changed:
            self._value_error(f"{sorted(changed)} are MIFQ (inverse soft-Q) settings that MASQIL does not use; "
                              f"remove them (defaults: {IQ_ONLY}).")

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=MASQILTorchRLModule, model_config=self.model_config)

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.masqil.masqil_learner import MASQILTorchLearner

        return MASQILTorchLearner


class MASQILTorchRLModule(MIFQTorchRLModule):
    """MIFQ's team module plus a target mixer (QMIX-style targets: target Q net and target mixer)."""

    @override(MIFQTorchRLModule)
    def get_non_inference_attributes(self):
        return super().get_non_inference_attributes() + ["_target_mixer"]

    @override(MIFQTorchRLModule)
    def make_target_networks(self) -> None:
        super().make_target_networks()
        self._target_mixer = make_target_network(self.v_mixer)

    @override(MIFQTorchRLModule)
    def get_target_network_pairs(self):
        return super().get_target_network_pairs() + [(self.v_mixer, self._target_mixer)]


class MASQIL(MIFQ):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MASQILConfig:
        return MASQILConfig()
