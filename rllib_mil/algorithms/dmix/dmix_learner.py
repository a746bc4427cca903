"""DMIX's loss: quantile Huber regression of Z_tot(S, a) (N quantiles) on r + γ(1 − d)·Z_tot^target(S', a*)."""
import torch
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.value_decomposition.vd_learner import Q_TOT_MEAN, TARGET_MEAN, TDRows, ValueDecompositionLearner
from rllib_mil.algorithms.value_decomposition.vd_loss import gather_actions, quantile_huber_loss, td_target


class DMIXTorchLearner(ValueDecompositionLearner):
    @override(ValueDecompositionLearner)
    def td_loss(self, module, config, rows: TDRows):
        z = module.quantiles(rows.out)  # (B, n, A·N) -> (B, n, A, N)
        z_tot = module.mixer(gather_actions(z, rows.actions), rows.state)  # (B, n, N) -> (B, N)
        with torch.no_grad():
            a_next = self.bootstrap_actions(module, config, rows)  # (B, n), greedy in the means
            z_next = gather_actions(module.quantiles(rows.target_next), a_next)  # (B, n, N)
            y = td_target(rows.reward, rows.terminated, module.target_mixer(z_next, rows.next_state),
                          config.gamma)  # (B, N)
        loss = quantile_huber_loss(z_tot, y, module.quantile_levels(z_tot.device).to(z_tot.dtype), config.huber_kappa)
        return loss, {Q_TOT_MEAN: z_tot.detach().mean(), TARGET_MEAN: y.mean()}
