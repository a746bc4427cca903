"""MIFQ learner: joins expert rows (on-device ``ExpertBuffer``) with replay rows and minimises eq. 9.

The loss itself is the pure function ``mifq_loss`` (``mifq_loss.py``); this file only gathers its inputs.
Target-network syncing (polyak ``tau`` every ``target_network_update_freq`` sampled env steps) and the
NEXT_OBS learner connector come from RLlib's ``DQNLearner``.
"""

import functools
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.bc.bc_loss import bc_term
from rllib_mil.algorithms.mifq.mifq_loss import chi2_phi, mifq_loss, q_gradient_penalty, replay_chi2_input
from rllib_mil.algorithms.mifq.mifq_rl_module import TARGET_Q_VALUES
from rllib_mil.algorithms.utils import FusedGradientStep, InPlacePolyak, LastUpdateMetrics, raise_if_not_finite
from rllib_mil.data import schema
from rllib_mil.algorithms.imitation import EXPERT_ONLY, ExpertDataLearner
from rllib_mil.data.sequences import SEQ_ACTIONS, SEQ_KEYS, SEQ_MASK, SEQ_OBS, SEQ_STATE, SEQ_TERMINATED, SEQ_VALID
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE
from rllib_mil.modules.soft import action_logp, soft_value, with_policy_prior
from rllib_mil.modules.team_module import BEHAVIOUR_LOGP

logger = logging.getLogger(__name__)

# Metric keys (TensorBoard: learners/default_policy/<key>).
REWARD_TERM = "reward_term"
VALUE_TERM = "value_term"
Q_MEAN = "q_mean"
BC_TERM = "bc_term"
GRAD_PENALTY = "grad_penalty"
Q_ABS_MAX = "q_abs_max"
# Rows that entered the loss in one update, and replay rows sampled for it.
EXPERT_ROWS = "expert_rows"
REPLAY_ROWS = "replay_rows"
REPLAY_ROWS_SAMPLED = "replay_rows_sampled"
# Mean (clipped, joint) importance weight of the replay rows' χ² (replay_is_weights).
REPLAY_IS_WEIGHT = "replay_is_weight_mean"
# Behaviour-cloning loss of the policy prior's head on expert rows (policy_prior="bc").
PRIOR_NLL = "prior_nll"
# Name of the mixers' optimizer when `mixer_lr` is set.
MIXER_OPTIMIZER = "mixer"

class MIFQTorchLearner(LastUpdateMetrics, FusedGradientStep, InPlacePolyak, ExpertDataLearner, DQNLearner, TorchLearner):
    @override(DQNLearner)
    def build(self) -> None:
        super().build()
        self.build_expert_data()
        logger.info("MIFQ learner: %d expert transitions on %s", len(self._expert), self._device)

    @classmethod
    @override(DQNLearner)
    def rl_module_required_apis(cls) -> list:
        return [TargetNetworkAPI]

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        if config.mixer_lr is None:
            return super().configure_optimizers_for_module(module_id, config)
        # Algorithm 1's two step sizes: lambda_theta (`lr`) for the Q network, lambda_omega (`mixer_lr`) for the
        # mixers' hypernetworks.
        module = self._module[module_id].unwrapped()
        mixer = list({id(p): p for m in (module.v_mixer, module.r_mixer) for p in m.parameters()}.values())
        in_mixer = {id(p) for p in mixer}
        rest = [p for p in self.get_parameters(self._module[module_id]) if id(p) not in in_mixer]
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(rest), params=rest,
                                lr_or_lr_schedule=config.lr)
        self.register_optimizer(module_id=module_id, optimizer_name=MIXER_OPTIMIZER,
                                optimizer=torch.optim.Adam(mixer), params=mixer, lr_or_lr_schedule=config.mixer_lr)

    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        # The prior trains in every update, or (prior_training="warm_start") only in the warm start's expert-only ones.
        train_prior = config.prior_training == "always" or EXPERT_ONLY in batch
        if config.prior_training == "warm_start":
            # Out of autograd while fixed (its own tower, prior_net="separate"): otherwise the slice of the two towers'
            # output hands it zero gradients, which Adam's momentum still turns into steps, and a backward pass.
            for p in module.q_net.second.parameters():
                p.requires_grad_(train_prior)
        rows = self.loss_rows(module, config, batch,
                              online_next=config.value_next == "online" and config.use_target_network)
        mask, n_e, n_r = rows.mask, rows.n_e, rows.n_r
        actions, done, state, state_next = rows.actions, rows.done, rows.state, rows.state_next
        # Q (B, n, A) and the policy's scores: Q itself, or Q + α·β·log π0 with a BC prior (policy_prior="bc").
        q, scores, prior_logits = self.policy_scores(module, rows.q, mask)
        q_taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, n, 1) -> (B, n)
        v_cur = soft_value(scores, mask, config.alpha)  # (B, n)
        # V(S') of the recovered reward r = Q(S, A) - gamma V(S'): target net (no gradient) or online net.
        v_next = soft_value(self.policy_scores(module, rows.q_next, rows.mask_next)[1], rows.mask_next,
                            config.alpha)  # (B, n)
        # V(S') of the value term: the online net lets a trajectory's rows telescope (MIFQConfig.value_next).
        v_next_val = v_next
        if rows.q_next_online is not None:
            v_next_val = soft_value(self.policy_scores(module, rows.q_next_online, rows.mask_next)[1],
                                    rows.mask_next, config.alpha)  # (B, n)

        v_rows = value_row_slice(config.value_rows, n_e, n_r)
        rep = slice(n_e, n_e + n_r) if (config.chi2_replay and n_r) else None
        is_expert = torch.arange(n_e + n_r, device=q.device) < n_e  # (B,)
        replay_weight = None
        if config.replay_is_weights and rep is not None:
            # π_i(a_i|o_i) / μ_i(a_i|o_i): the current softmax(Q_i/α) over the env runners' behaviour, no gradient.
            with torch.no_grad():
                logp_pi = action_logp(scores[rep], mask[rep], config.alpha, actions[rep])  # (Br, n)
                replay_weight = (logp_pi - batch[BEHAVIOUR_LOGP].to(logp_pi.dtype)).exp()  # (Br, n)
        loss, terms = mifq_loss(
            q_taken_e=q_taken[:n_e],
            v_next_e=v_next[:n_e],
            done_e=done[:n_e],
            state_e=state[:n_e],
            v_cur=v_cur[v_rows],
            v_next=v_next_val[v_rows],
            done=done[v_rows],
            state=state[v_rows],
            next_state=state_next[v_rows],
            r_mixer=module.r_mixer,
            v_mixer=module.v_mixer,
            gamma=config.gamma,
            q_taken_r=None if rep is None else replay_chi2_input(q_taken, v_cur, config.chi2_replay)[rep],
            v_next_r=None if rep is None else v_next[rep],
            done_r=None if rep is None else done[rep],
            state_r=None if rep is None else state[rep],
            phi=functools.partial(chi2_phi, coef=config.chi2_coef),
            chi2_coef=config.chi2_coef,
            replay_weight=replay_weight,
            replay_weight_clip=config.replay_is_clip,
            value_is_expert=is_expert[v_rows],
        )
        if replay_weight is not None:
            terms = {**terms, REPLAY_IS_WEIGHT: replay_weight.prod(dim=-1).clamp(max=config.replay_is_clip).mean()}
        if config.bc_coef:
            tau_bc = config.alpha if config.bc_temperature is None else config.bc_temperature
            bc = bc_term(q[:n_e], actions[:n_e], mask[:n_e], tau_bc)
            loss = loss + config.bc_coef * bc
            terms = {**terms, BC_TERM: bc.detach(), "loss": loss.detach()}
        if config.grad_penalty and n_r:
            k = min(n_e, n_r)
            # The penalty is on Σ_a Q_i: the prior's logits (policy_prior) are not part of it.
            gp = q_gradient_penalty(lambda o: module.split_prior(module.q_values(o))[0], rows.obs[:k],
                                    rows.obs[n_e : n_e + k], self._expert_gen)
            loss = loss + config.grad_penalty * gp
            terms = {**terms, GRAD_PENALTY: gp.detach(), "loss": loss.detach()}
        if prior_logits is not None:
            # The prior π0 = softmax(logits) is behaviour cloning on the expert rows (temperature 1). With
            # prior_training="warm_start" it trains only in updates without replay rows (the warm start's) and is
            # fixed afterwards; its NLL is still logged.
            prior_nll = bc_term(prior_logits[:n_e], actions[:n_e], mask[:n_e], 1.0)
            if train_prior:
                loss = loss + prior_nll
            terms = {**terms, PRIOR_NLL: prior_nll.detach(), "loss": loss.detach()}
        extra_loss, extra_terms = self.extra_loss(module, config, batch, rows, q_taken, v_next)
        if extra_loss is not None:
            loss = loss + extra_loss
            terms = {**terms, **extra_terms, "loss": loss.detach()}
        raise_if_not_finite(type(self).__name__.replace("TorchLearner", ""), loss, terms,
                            "Lower `lr`, raise `alpha`, or set `grad_clip`.")

        def metrics():
            q_avail = q.masked_select(mask > 0.5)
            value_replay = v_rows.stop - max(v_rows.start, n_e)
            return {
                **terms,
                Q_MEAN: q_avail.mean(),
                Q_ABS_MAX: q_avail.abs().max(),
                # Rows that entered the loss in this update, by kind (replay: value term or χ², whichever is more).
                EXPERT_ROWS: float(n_e),
                REPLAY_ROWS: float(max(value_replay, 0 if rep is None else n_r)),
                REPLAY_ROWS_SAMPLED: float(n_r),
            }

        self.log_loss_metrics(module_id, metrics)
        return loss

    @staticmethod
    def policy_scores(module, out: torch.Tensor, mask: torch.Tensor):
        """``q_net`` outputs ``(B, n, agent_out_dim)`` -> ``(Q, scores, prior logits or None)``, each
        ``(B, n, A)``: without a prior the scores are Q; with one, Q + α·β·log π0 (no gradient into π0), whose
        soft value and softmax are V_i and π_i of the KL-regularised soft Bellman equation."""
        q, logits = module.split_prior(out)
        if logits is None:
            return q, q, None
        return q, with_policy_prior(q, logits, mask, module.prior_scale), logits

    def extra_loss(self, module, config, batch, rows: "LossRows", q_taken: torch.Tensor, v_next: torch.Tensor):
        """Hook for subclasses: ``(loss to add, logged terms)`` from the update's train ``batch``, its rows,
        ``q_taken (B, n)`` = Q_i(o_i, a_i) and ``v_next (B, n)`` = V_i(o_i') (target net or online); ``(None, {})``
        adds nothing."""
        return None, {}

    def loss_rows(self, module, config, batch, online_next: bool) -> "LossRows":
        """Rows [0, n_e) expert, [n_e, n_e + n_r) replay: transitions, or the real steps of whole episodes with
        ``use_gru``."""
        gather = self._sequence_rows if config.use_gru else self._transition_rows
        return gather(module, config, batch, online_next)

    def _transition_rows(self, module, config, batch, online_next: bool) -> "LossRows":
        """Expert transitions (on-device buffer) joined with the replay transitions of ``batch``; ``online_next``
        also computes Q(o', ·) of the online net (value_next="online" with a target net)."""
        exp = self.expert_rows(config.expert_batch_size)
        n_e = exp[schema.ACTIONS].shape[0]
        # Offline updates carry no replay rows (MIFQ.training_step passes only the EXPERT_ONLY marker).
        n_r = 0 if EXPERT_ONLY in batch else batch[Columns.ACTIONS].shape[0]

        # One forward pass over both kinds of rows.
        def join(expert_col, *replay_path):
            e = exp[expert_col]
            if n_r == 0:
                return e
            r = batch
            for key in replay_path:
                r = r[key]
            return torch.cat([e, r.to(e.dtype)], dim=0)

        state = join(schema.STATE, Columns.OBS, STATE)  # (B, s)
        state_next = join(schema.NEXT_STATE, Columns.NEXT_OBS, STATE)  # (B, s)
        # What the agent rows read: own obs by default, the state for state-conditioned critics (agent_input).
        o = module.agent_inputs(join(schema.OBS, Columns.OBS, OBS), state)  # (B, n, d_in)
        o_next = module.agent_inputs(join(schema.NEXT_OBS, Columns.NEXT_OBS, OBS), state_next)  # (B, n, d_in)
        if config.use_target_network:
            with torch.no_grad():
                q_next = module.forward_target({Columns.OBS: {OBS: o_next}})[TARGET_Q_VALUES]
        else:
            q_next = module.q_values(o_next)
        return LossRows(
            q=module.q_values(o),  # (B, n, A)
            q_next=q_next,  # (B, n, A)
            q_next_online=module.q_values(o_next) if online_next else None,
            mask=join(schema.ACTION_MASK, Columns.OBS, ACTION_MASK),  # (B, n, A)
            mask_next=join(schema.NEXT_ACTION_MASK, Columns.NEXT_OBS, ACTION_MASK),  # (B, n, A)
            state=state,  # (B, s)
            state_next=state_next,  # (B, s)
            actions=join(schema.ACTIONS, Columns.ACTIONS),  # (B, n) int64
            # Terminated only: MPE episodes end by truncation, through which we bootstrap.
            done=join(schema.TERMINATED, Columns.TERMINATEDS),  # (B,) float
            n_e=n_e,
            n_r=n_r,
            obs=o,
        )

    def _sequence_rows(self, module, config, batch, online_next: bool) -> "LossRows":
        """Recurrent agents: whole expert episodes joined with whole replay episodes (``batch`` in the layout of
        rllib_mil/data/sequences.py), the GRU run over each from the zero state; the real steps become rows."""
        exp = self.expert_sequences(config.expert_batch_size)
        seqs = [exp] if EXPERT_ONLY in batch else [exp, {k: batch[k] for k in SEQ_KEYS}]
        T = max(int(s[SEQ_VALID].shape[1]) for s in seqs)

        def pad_t(x, steps):  # (B, t, ...) -> (B, steps, ...) with zeros after the end
            return torch.cat([x, x.new_zeros((x.shape[0], steps - x.shape[1]) + x.shape[2:])], dim=1)

        def cat(key, steps):
            return torch.cat([pad_t(s[key].to(exp[key].dtype), steps) for s in seqs], dim=0)

        masks = cat(SEQ_MASK, T + 1)  # (B, T+1, n, A)
        states = cat(SEQ_STATE, T + 1)  # (B, T+1, s)
        obs = module.agent_inputs(cat(SEQ_OBS, T + 1), states)  # (B, T+1, n, d_in): o_0 .. o_T
        valid = cat(SEQ_VALID, T) > 0  # (B, T)
        n_e = int(exp[SEQ_VALID].sum())
        n_r = int(valid.sum()) - n_e
        q_all = module.q_values(obs)  # (B, T+1, n, A), one pass over o_0 .. o_T
        if config.use_target_network:
            with torch.no_grad():
                q_next_all = module.forward_target({Columns.OBS: {OBS: obs}})[TARGET_Q_VALUES][:, 1:]
        else:
            q_next_all = q_all[:, 1:]

        # (B, T, ...) -> (N, ...): the real steps only, expert episodes first (they lead the batch).
        def real(x):
            return x[valid]

        return LossRows(
            q=real(q_all[:, :-1]),  # (N, n, A)
            q_next=real(q_next_all),  # (N, n, A)
            q_next_online=real(q_all[:, 1:]) if online_next else None,
            mask=real(masks[:, :-1]),
            mask_next=real(masks[:, 1:]),
            state=real(states[:, :-1]),
            state_next=real(states[:, 1:]),
            actions=real(cat(SEQ_ACTIONS, T)).long(),  # (N, n)
            done=real(cat(SEQ_TERMINATED, T)),  # (N,)
            n_e=n_e,
            n_r=n_r,
            obs=None,
        )


@dataclass
class LossRows:
    """What eq. 9 needs, row by row: expert rows [0, n_e), then replay rows [n_e, n_e + n_r)."""

    q: torch.Tensor  # (B, n, A) Q(o, ·) of the online net
    q_next: torch.Tensor  # (B, n, A) Q(o', ·) for r = Q − γV(S'): target net, or online without one
    q_next_online: Optional[torch.Tensor]  # (B, n, A) Q(o', ·) of the online net, when value_next="online" needs it
    mask: torch.Tensor  # (B, n, A)
    mask_next: torch.Tensor  # (B, n, A)
    state: torch.Tensor  # (B, s)
    state_next: torch.Tensor  # (B, s)
    actions: torch.Tensor  # (B, n) int64
    done: torch.Tensor  # (B,) 1.0 where terminated
    n_e: int
    n_r: int
    obs: Optional[torch.Tensor]  # (B, n, d_in) the agent rows' inputs, for the gradient penalty (transitions only)


def value_row_slice(value_rows: str, n_e: int, n_r: int) -> slice:
    """Rows of the value term among [expert (n_e) | replay (n_r)]: "expert", "replay" (eq. 9 as written) or "all"
    (IQ-Learn online). With no replay rows (offline) every choice falls back to the expert rows."""
    if value_rows == "expert" or n_r == 0:
        return slice(0, n_e)
    if value_rows == "replay":
        return slice(n_e, n_e + n_r)
    return slice(0, n_e + n_r)
