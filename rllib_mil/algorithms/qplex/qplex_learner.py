"""QPLEX's TD loss: the duplex dueling Q_tot(S, a) against r + γ(1 − d)·Q_tot^target(S', a*), where the target mixer
reads the target agents' Q at a* and their max as V_i (PyMARL's dmaq learner)."""
import torch
import torch.nn.functional as F
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.value_decomposition.vd_learner import Q_TOT_MEAN, TARGET_MEAN, TDRows, ValueDecompositionLearner
from rllib_mil.algorithms.value_decomposition.vd_loss import gather_actions, masked_max, td_loss, td_target


class QPLEXTorchLearner(ValueDecompositionLearner):
    @override(ValueDecompositionLearner)
    def td_loss(self, module, config, rows: TDRows):
        A = rows.out.shape[-1]
        q_tot = module.mixer(gather_actions(rows.out, rows.actions), rows.state,  # (B, n) -> (B,)
                             v=masked_max(rows.out, rows.mask),  # (B, n)
                             actions=F.one_hot(rows.actions, A))  # (B, n, A)
        with torch.no_grad():
            a_next = self.bootstrap_actions(module, config, rows)  # (B, n)
            next_tot = module.target_mixer(gather_actions(rows.target_next, a_next), rows.next_state,
                                           v=masked_max(rows.target_next, rows.next_mask),
                                           actions=F.one_hot(a_next, A))  # (B,)
            y = td_target(rows.reward, rows.terminated, next_tot, config.gamma)  # (B,)
        return td_loss(q_tot, y), {Q_TOT_MEAN: q_tot.detach().mean(), TARGET_MEAN: y.mean()}
