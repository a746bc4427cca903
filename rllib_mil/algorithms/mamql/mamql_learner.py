"""MAMQL learner: MIFQ's learner with no mixer and state-conditioned critics (the per-agent inverse soft-Q loss),
plus the reward networks' fit (``mamql_loss.reward_recovery_loss``) in the same update."""
import torch
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.mamql.mamql_loss import reward_recovery_loss
from rllib_mil.algorithms.mifq.mifq_learner import MIFQTorchLearner
from rllib_mil.data.schema import AGENT_REWARDS
from rllib_mil.rewards import torch_pearson

# Metric keys (TensorBoard: learners/default_policy/<key>).
REWARD_MSE = "reward_mse"
RECOVERED_REWARD_MEAN = "recovered_reward_mean"
# Pearson correlation of recovered and true per-agent rewards on the update's replay rows (mean over agents).
REWARD_CORR_REPLAY = "reward_corr_replay"


class MAMQLTorchLearner(MIFQTorchLearner):
    @override(MIFQTorchLearner)
    def extra_loss(self, module, config, batch, rows, q_taken: torch.Tensor, v_next: torch.Tensor):
        # Rows: expert and replay transitions alike (whichever entered this update).
        r_pred = module.rewards(rows.state, rows.actions, rows.state_next)  # (B, n): the recovered reward itself
        # What is fitted (module.fitted_rewards): R_i(s, a), or g_i(s') + γ(1 − d)·h_i(s') − h_i(s) (reward_form="state")
        shaping = module.shaping(rows.state, rows.state_next, rows.done, config.gamma)  # (B, n) or None
        r_fit = r_pred if shaping is None else r_pred + shaping
        mse, _ = reward_recovery_loss(r_fit, q_taken, v_next, rows.done, config.gamma)
        terms = {REWARD_MSE: mse.detach(), RECOVERED_REWARD_MEAN: r_pred.detach().mean()}
        # (Br, n): the replay rows' true per-agent rewards (env info -> TeamEpisodeReplayBuffer); absent offline.
        true = batch.get(AGENT_REWARDS)
        # A metric only: computed on the update whose metrics are reported (LastUpdateMetrics).
        if self._metrics_due and true is not None and rows.n_r and rows.obs is not None:
            rec = r_pred.detach()[rows.n_e:rows.n_e + rows.n_r]  # (Br, n) replay rows
            terms[REWARD_CORR_REPLAY] = torch_pearson(rec, true.to(rec.dtype)).nanmean()
        return config.reward_coef * mse, terms
