"""QMIX's TD loss: Q_tot(S, a) = M(Q_i(o_i, a_i); S) against r + γ(1 − d)·M^target(Q_i^target(o_i', a*_i); S')."""
import torch
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.value_decomposition.vd_learner import Q_TOT_MEAN, TARGET_MEAN, TDRows, ValueDecompositionLearner
from rllib_mil.algorithms.value_decomposition.vd_loss import gather_actions, td_loss, td_target


class QMIXTorchLearner(ValueDecompositionLearner):
    @override(ValueDecompositionLearner)
    def td_loss(self, module, config, rows: TDRows):
        q_tot = module.mixer(gather_actions(rows.out, rows.actions), rows.state)  # (B, n, A) -> (B, n) -> (B,)
        with torch.no_grad():
            a_next = self.bootstrap_actions(module, config, rows)  # (B, n)
            next_tot = module.target_mixer(gather_actions(rows.target_next, a_next), rows.next_state)  # (B,)
            y = td_target(rows.reward, rows.terminated, next_tot, config.gamma)  # (B,)
        return td_loss(q_tot, y), {Q_TOT_MEAN: q_tot.detach().mean(), TARGET_MEAN: y.mean()}
