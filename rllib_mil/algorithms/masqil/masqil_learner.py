"""MASQIL learner: MIFQ's rows (expert first, then replay; transitions or whole episodes), SQIL's rewards and the
soft TD loss on mixed joint values (``masqil_loss.soft_td_loss``)."""
from typing import Any, Dict

import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.masqil.masqil_loss import soft_td_loss
from rllib_mil.algorithms.mifq.mifq_learner import EXPERT_ROWS, Q_ABS_MAX, Q_MEAN, REPLAY_ROWS, MIFQTorchLearner
from rllib_mil.algorithms.utils import raise_if_not_finite
from rllib_mil.modules.soft import soft_value


class MASQILTorchLearner(MIFQTorchLearner):
    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        rows = self.loss_rows(module, config, batch, online_next=False)
        q_taken = rows.q.gather(-1, rows.actions.unsqueeze(-1)).squeeze(-1)  # (B, n, 1) -> (B, n)
        q_tot = module.v_mixer(q_taken, rows.state)  # (B, n) -> (B,)
        with torch.no_grad():
            v_next = soft_value(rows.q_next, rows.mask_next, config.alpha)  # (B, n), target Q net
            mixer = module._target_mixer if config.use_target_network else module.v_mixer
            v_tot_next = mixer(v_next, rows.state_next)  # (B,)
        # SQIL's rewards: 1 on the expert's transitions, 0 on the agents' own.
        reward = (torch.arange(rows.n_e + rows.n_r, device=q_tot.device) < rows.n_e).to(q_tot.dtype)  # (B,)
        loss, terms = soft_td_loss(q_tot, v_tot_next, reward, rows.done, config.gamma)
        raise_if_not_finite("MASQIL", loss, terms, "Lower `lr` or raise `alpha`.")

        def metrics():
            q_avail = rows.q.masked_select(rows.mask > 0.5)
            return {**terms, Q_MEAN: q_avail.mean(), Q_ABS_MAX: q_avail.abs().max(),
                    EXPERT_ROWS: float(rows.n_e), REPLAY_ROWS: float(rows.n_r),
                    "q_tot_expert": q_tot.detach()[: rows.n_e].mean(),
                    "q_tot_replay": q_tot.detach()[rows.n_e:].mean() if rows.n_r else torch.tensor(float("nan"))}

        self.log_loss_metrics(module_id, metrics)
        return loss
