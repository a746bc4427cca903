"""Learner base of the value-decomposition algorithms: gathers the replay rows and the three forward passes every
TD loss needs, adds IGM-DA's teach loss, checks the loss is finite and logs the metrics. Each algorithm's learner
writes only ``td_loss`` (QMIX: ``qmix/qmix_learner.py``, QPLEX, DMIX); there is no branching over mixers here.

Target-network syncing (polyak ``tau`` every ``target_network_update_freq`` sampled env steps) and the NEXT_OBS
learner connector come from RLlib's ``DQNLearner``.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.utils import FusedGradientStep, InPlacePolyak, LastUpdateMetrics, raise_if_not_finite
from rllib_mil.algorithms.value_decomposition.vd_loss import next_actions, teach_loss
from rllib_mil.data.sequences import (
    SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_REWARDS, SEQ_STATE, SEQ_TERMINATED, SEQ_VALID)
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE
from rllib_mil.modules.soft import greedy_actions

# Metric keys (TensorBoard: learners/default_policy/<key>).
TD_LOSS = "td_loss"
TEACH_LOSS = "teach_loss"
TEACH_AGREEMENT = "teach_agreement"
Q_TOT_MEAN = "q_tot_mean"
TARGET_MEAN = "td_target_mean"
Q_ABS_MAX = "q_abs_max"
REPLAY_ROWS = "replay_rows"


@dataclass
class TDRows:
    """One replay batch, row by row (B transitions of the team)."""

    obs: torch.Tensor  # (B, n, d) local observations
    state: torch.Tensor  # (B, s)
    mask: torch.Tensor  # (B, n, A)
    next_obs: torch.Tensor  # (B, n, d)
    next_state: torch.Tensor  # (B, s)
    next_mask: torch.Tensor  # (B, n, A)
    actions: torch.Tensor  # (B, n) int64
    reward: torch.Tensor  # (B,) team reward
    terminated: torch.Tensor  # (B,) 1.0 where terminated (truncation bootstraps)
    out: torch.Tensor  # (B, n, td_out) TD net on (o, S), with gradient
    out_next: torch.Tensor  # (B, n, td_out) TD net on (o', S'), no gradient (double-Q action choice)
    target_next: torch.Tensor  # (B, n, td_out) target TD net on (o', S')
    q_acting: Optional[torch.Tensor]  # (B, n, A) the acting (learner) agents' scores, IGM-DA only
    # (B, n, A) the learner agents' scores on o', no gradient: IGM-DA with bootstrap_actions="learner" only
    learner_next: Optional[torch.Tensor] = None


class ValueDecompositionLearner(LastUpdateMetrics, FusedGradientStep, InPlacePolyak, DQNLearner, TorchLearner):
    @classmethod
    @override(DQNLearner)
    def rl_module_required_apis(cls) -> list:
        return [TargetNetworkAPI]

    def td_loss(self, module, config, rows: TDRows) -> tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(TD loss, logged terms incl. ``Q_TOT_MEAN`` and ``TARGET_MEAN``) of one algorithm."""
        raise NotImplementedError

    @staticmethod
    def bootstrap_actions(module, config, rows: TDRows) -> torch.Tensor:
        """a* of the TD target, ``(B, n)``: the learner agents' greedy actions on o' where they are given
        (``bootstrap_actions="learner"``: the TD agents then evaluate the policy that acts), else the TD agents' own
        greedy actions (double Q: chosen by the online net, evaluated by the target)."""
        if rows.learner_next is not None:
            return greedy_actions(rows.learner_next, rows.next_mask)
        return next_actions(module.td_scores(rows.out_next), module.td_scores(rows.target_next), rows.next_mask,
                            config.double_q)

    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        learner_next = module.igm_da and config.bootstrap_actions == "learner"
        rows = (self._sequence_rows(module, batch, learner_next) if config.use_gru
                else self._transition_rows(module, batch, learner_next))
        if config.reward_scale != 1.0:  # TD targets on the scaled reward (SMAC-like scale; see the config)
            rows.reward = rows.reward * config.reward_scale
        loss, terms = self.td_loss(module, config, rows)
        metrics = {TD_LOSS: loss.detach(), **terms}
        if module.igm_da:
            # IGM-DA: the learner agents (local obs) imitate the expert agents' greedy actions on the rows the
            # learner agents collected (DAgger); the expert's scores carry no gradient into this term.
            teach, agreement = teach_loss(rows.q_acting, module.td_scores(rows.out).detach(), rows.mask,
                                          config.teach_loss)
            loss = loss + config.teach_coef * teach
            metrics.update({TEACH_LOSS: teach.detach(), TEACH_AGREEMENT: agreement})
        raise_if_not_finite(type(self).__name__.replace("TorchLearner", ""), loss, metrics,
                            "Lower `lr`, or set `grad_clip`.")
        self.log_loss_metrics(module_id, lambda: {
            **metrics, "loss": loss.detach(), REPLAY_ROWS: float(rows.actions.shape[0]),
            Q_ABS_MAX: module.td_scores(rows.out).masked_select(rows.mask > 0.5).abs().max()})
        return loss

    @staticmethod
    def _transition_rows(module, batch, learner_next: bool = False) -> TDRows:
        """Replay transitions (the DQN learner connector adds NEXT_OBS)."""
        o, o2 = batch[Columns.OBS], batch[Columns.NEXT_OBS]
        with torch.no_grad():
            out_next = module.td_values(o2[OBS], o2[STATE])  # (B, n, td_out)
            target_next = module.target_td_values(o2[OBS], o2[STATE])  # (B, n, td_out)
            q_learner_next = module.q_values(module.agent_inputs(o2[OBS], o2[STATE])) if learner_next else None
        return TDRows(
            obs=o[OBS], state=o[STATE], mask=o[ACTION_MASK],
            next_obs=o2[OBS], next_state=o2[STATE], next_mask=o2[ACTION_MASK],
            actions=batch[Columns.ACTIONS].long(),
            reward=batch[Columns.REWARDS].float(),
            terminated=batch[Columns.TERMINATEDS].float(),
            out=module.td_values(o[OBS], o[STATE]),
            out_next=out_next,
            target_next=target_next,
            q_acting=module.q_values(module.agent_inputs(o[OBS], o[STATE])) if module.igm_da else None,
            learner_next=q_learner_next,
        )

    @staticmethod
    def _sequence_rows(module, batch, learner_next: bool = False) -> TDRows:
        """Recurrent agents: whole replay episodes in the padded layout of rllib_mil/data/sequences.py, each net run
        over o_0 .. o_L from the zero state; the real steps become rows (padding never reaches the loss)."""
        obs, state, mask = batch[SEQ_OBS], batch[SEQ_STATE], batch[SEQ_MASK]  # (B, T+1, ...)
        valid = batch[SEQ_VALID] > 0  # (B, T)
        out_all = module.td_values(obs, state)  # (B, T+1, n, td_out), one pass over o_0 .. o_T
        with torch.no_grad():
            target_all = module.target_td_values(obs, state)  # (B, T+1, n, td_out)
        q_acting = q_all = None
        if module.igm_da:
            q_all = module.q_values(module.agent_inputs(obs, state))  # (B, T+1, n, A)
            q_acting = q_all[:, :-1][valid]  # (N, n, A)

        def now(x):  # (B, T+1, ...) -> (N, ...): step t of each real step
            return x[:, :-1][valid]

        def nxt(x):  # (B, T+1, ...) -> (N, ...): step t + 1
            return x[:, 1:][valid]

        return TDRows(
            obs=now(obs), state=now(state), mask=now(mask),
            next_obs=nxt(obs), next_state=nxt(state), next_mask=nxt(mask),
            actions=batch[SEQ_ACTIONS][valid].long(),  # (N, n)
            reward=batch[SEQ_REWARDS][valid].float(),  # (N,)
            terminated=batch[SEQ_TERMINATED][valid].float(),  # (N,)
            out=now(out_all),
            out_next=nxt(out_all).detach(),
            target_next=nxt(target_all),
            q_acting=q_acting,
            learner_next=nxt(q_all).detach() if learner_next else None,
        )
