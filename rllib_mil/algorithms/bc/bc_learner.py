"""BC learner: masked negative log-likelihood of the expert's actions (``bc_loss.bc_term``, τ = 1) on expert
transitions, or on the real steps of whole expert episodes with ``use_gru``."""
import logging
from typing import Any, Dict

import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.bc.bc_loss import bc_term
from rllib_mil.algorithms.imitation import ExpertDataLearner
from rllib_mil.algorithms.utils import FusedGradientStep, LastUpdateMetrics, raise_if_not_finite
from rllib_mil.data import schema
from rllib_mil.data.sequences import SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_STATE, SEQ_VALID
from rllib_mil.modules.soft import greedy_actions

logger = logging.getLogger(__name__)

# Metric keys (TensorBoard: learners/default_policy/<key>).
BC_NLL = "bc_nll"
EXPERT_ACCURACY = "expert_accuracy"
EXPERT_ROWS = "expert_rows"
LOGITS_ABS_MAX = "logits_abs_max"


class BCTorchLearner(LastUpdateMetrics, FusedGradientStep, ExpertDataLearner, TorchLearner):
    @override(TorchLearner)
    def build(self) -> None:
        super().build()
        self.build_expert_data()
        logger.info("BC learner: %d expert transitions on %s", len(self._expert), self._device)

    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        if config.use_gru:
            seq = self.expert_sequences(config.expert_batch_size)
            valid = seq[SEQ_VALID] > 0  # (B, T)
            inputs = module.agent_inputs(seq[SEQ_OBS], seq[SEQ_STATE])  # (B, T+1, n, d_in)
            logits = module.q_values(inputs)[:, :-1][valid]  # (B, T+1, n, A) -> (N, n, A), real steps only
            actions, mask = seq[SEQ_ACTIONS][valid], seq[SEQ_MASK][:, :-1][valid]  # (N, n), (N, n, A)
        else:
            exp = self.expert_rows(config.expert_batch_size)
            logits = module.q_values(module.agent_inputs(exp[schema.OBS], exp[schema.STATE]))  # (B, n, A)
            actions, mask = exp[schema.ACTIONS], exp[schema.ACTION_MASK]
        loss = bc_term(logits, actions, mask, temperature=1.0)
        raise_if_not_finite("BC", loss, {BC_NLL: loss.detach()}, "Lower `lr` or set `grad_clip`.")

        def metrics():
            choice = (mask > 0).sum(dim=-1) > 1  # (N, n): agents with a real choice
            hit = (greedy_actions(logits, mask) == actions.long())[choice]
            return {
                "loss": loss.detach(),
                BC_NLL: loss.detach(),
                EXPERT_ACCURACY: hit.float().mean() if hit.numel() else torch.tensor(float("nan")),
                EXPERT_ROWS: float(actions.shape[0]),
                LOGITS_ABS_MAX: logits.masked_select(mask > 0.5).abs().max(),
            }

        self.log_loss_metrics(module_id, metrics)
        return loss
