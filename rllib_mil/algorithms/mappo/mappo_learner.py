"""MAPPO learner: RLlib's PPO learner (GAE connector, entropy schedule, KL coefficient) with MAPPO's loss.

The loss itself is the pure function ``mappo_loss`` (``mappo_loss.py``); this class feeds it the module's
outputs, keeps the value normaliser's statistics up to date and logs the terms under PPO's metric names.
"""
from typing import Any, Dict

import torch
from ray.rllib.algorithms.ppo.ppo import LEARNER_RESULTS_KL_KEY, LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.torch_utils import explained_variance
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.mappo.mappo_loss import factor_log_probs, mappo_loss, positive_signalling_loss
from rllib_mil.algorithms.utils import FusedGradientStep, raise_if_not_finite

# Metric names beyond PPO's (see the algorithm README).
CLIP_FRACTION = "clip_fraction"
VALUE_NORM_MEAN = "value_norm_mean"
VALUE_NORM_STD = "value_norm_std"
VALUE_MEAN = "value_mean"
# With `signal_factor`: H(π̄_M), mean H(π_M(·|o)) and their difference, the minibatch estimate of I(o; m).
SIGNAL_MEAN_POLICY_ENTROPY = "signal_mean_policy_entropy"
SIGNAL_CONDITIONAL_ENTROPY = "signal_conditional_entropy"
SIGNAL_MUTUAL_INFO = "signal_mutual_info"
SIGNAL_LOSS = "signal_loss"


class MAPPOTorchLearner(FusedGradientStep, PPOTorchLearner):
    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        if self.config.credit == "agent" and self._learner_connector is not None:
            # Per-agent rewards beside RLlib's columns, and per-agent GAE in place of RLlib's (agent_credit.py).
            from ray.rllib.connectors.learner import AddOneTsToEpisodesAndTruncate, GeneralAdvantageEstimation

            from rllib_mil.algorithms.mappo.agent_credit import AddAgentRewardsToBatch, AgentGAE

            self._learner_connector.insert_after(AddOneTsToEpisodesAndTruncate, AddAgentRewardsToBatch())
            self._learner_connector.remove(GeneralAdvantageEstimation)
            self._learner_connector.append(AgentGAE(gamma=self.config.gamma, lambda_=self.config.lambda_))

    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        n, A = module.n_agents, module.n_actions
        # Rows RLlib added (the extra bootstrap step of each episode chunk, zero padding of sequences).
        valid = batch.get(Columns.LOSS_MASK)  # (B,) or (B, T) bool, or None
        logits = fwd_out[Columns.ACTION_DIST_INPUTS].unflatten(-1, (n, A))  # (..., n*A) -> (..., n, A)
        old_logits = batch[Columns.ACTION_DIST_INPUTS].unflatten(-1, (n, A))  # behaviour policy, same layout
        targets = batch[Postprocessing.VALUE_TARGETS]  # (...), env units
        normalizer = module.value_normalizer
        if normalizer is not None:
            normalizer.update(targets if valid is None else targets[valid])
            targets = normalizer.normalize(targets)
        values = module.normalized_values(batch)  # (...)

        loss, terms = mappo_loss(
            logits=logits,
            old_logits=old_logits,
            actions=batch[Columns.ACTIONS],
            advantages=batch[Postprocessing.ADVANTAGES],
            values=values,
            value_targets=targets,
            valid=valid,
            clip_param=config.clip_param,
            vf_loss_coeff=config.vf_loss_coeff,
            entropy_coeff=float(self.entropy_coeff_schedulers_per_module[module_id].get_current_value()),
            huber_delta=config.vf_huber_delta,
            vf_clip_param=config.vf_clip_param,
            kl_coeff=float(self.curr_kl_coeffs_per_module[module_id]) if config.use_kl_loss else 0.0,
        )
        if config.signal_factor is not None:
            # Marginal of the message factor: (..., n, A) -> (..., n, #words).
            msg_log_p = factor_log_probs(torch.log_softmax(logits, dim=-1), config.action_factors,
                                         config.signal_factor)
            ps_loss, h_mean, h_cond = positive_signalling_loss(msg_log_p, valid, config.signal_target)
            if config.signal_bias_coeff > 0:
                loss = loss + config.signal_bias_coeff * ps_loss
            terms.update({SIGNAL_LOSS: ps_loss.detach(), SIGNAL_MEAN_POLICY_ENTROPY: h_mean.detach(),
                          SIGNAL_CONDITIONAL_ENTROPY: h_cond.detach(), SIGNAL_MUTUAL_INFO: (h_mean - h_cond).detach(),
                          "loss": loss.detach()})
        raise_if_not_finite(
            "MAPPO", loss, terms, "Lower `lr`, set `grad_clip`, or raise `vf_huber_delta` / turn on value_normalization."
        )
        with torch.no_grad():
            sel = (lambda x: x) if valid is None else (lambda x: x[valid])  # noqa: E731
            metrics = {
                POLICY_LOSS_KEY: terms["policy_loss"],
                VF_LOSS_KEY: terms["vf_loss"],
                ENTROPY_KEY: terms["entropy"],
                LEARNER_RESULTS_KL_KEY: terms["mean_kl"],
                CLIP_FRACTION: terms["clip_fraction"],
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(sel(targets).reshape(-1),
                                                                         sel(values).reshape(-1)),
                # In env units: comparable with episode returns.
                VALUE_MEAN: sel(values if normalizer is None else normalizer.denormalize(values)).mean(),
            }
            for key in (SIGNAL_LOSS, SIGNAL_MEAN_POLICY_ENTROPY, SIGNAL_CONDITIONAL_ENTROPY, SIGNAL_MUTUAL_INFO):
                if key in terms:
                    metrics[key] = terms[key]
            if normalizer is not None:
                mean, std = normalizer.mean_std()
                metrics[VALUE_NORM_MEAN], metrics[VALUE_NORM_STD] = mean.float(), std.float()
        self.metrics.log_dict(metrics, key=module_id, window=1)
        return loss
