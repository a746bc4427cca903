"""MIFQ learner: joins expert rows (on-device ``ExpertBuffer``) with replay rows and minimises eq. 9.

The loss itself is the pure function ``mifq_loss`` (``mifq_loss.py``); this file only gathers its inputs.
Target-network syncing (polyak ``tau`` every ``target_network_update_freq`` sampled env steps) and the
NEXT_OBS learner connector come from RLlib's ``DQNLearner``.
"""

import logging
from typing import Any, Dict

import torch
from ray.rllib.algorithms.dqn.dqn_learner import DQNLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.mifq.mifq_loss import bc_term, mifq_loss, q_gradient_penalty
from rllib_mil.algorithms.mifq.mifq_rl_module import TARGET_Q_VALUES
from rllib_mil.algorithms.utils import raise_if_not_finite
from rllib_mil.data import schema
from rllib_mil.data.demos import ensure_demos, read_demos
from rllib_mil.data.expert_buffer import ExpertBuffer
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE
from rllib_mil.envs.registry import make_team_env
from rllib_mil.modules.soft import soft_value

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
# Batch key of an offline update: no replay rows, the learner draws expert rows only.
EXPERT_ONLY = "expert_only"


def resolve_expert_data(config) -> str:
    """Path of the demonstrations named by ``config.expert_data``, generated and cached when it asks for it,
    validated against ``config.env`` (raises ``DemoValidationError`` naming the mismatch)."""
    spec = config.expert_data
    if not isinstance(config.env, str):
        raise ValueError(
            "MIFQ needs `env` to be a registered team-env id (e.g. 'mpe/simple_spread'), so the demonstrations "
            f"can be checked against it; got {config.env!r}. See rllib_mil.envs.list_team_envs()."
        )
    env_config = dict(config.env_config or {})
    if isinstance(spec, dict):
        unknown = set(spec) - {"expert", "episodes", "seed"}
        if unknown:
            raise ValueError(
                f"Unknown key(s) {sorted(unknown)} in `expert_data`; allowed: expert, episodes, seed."
            )
        path = ensure_demos(
            config.env,
            env_config,
            expert=spec.get("expert", "scripted"),
            episodes=int(spec.get("episodes", 128)),
            seed=int(spec.get("seed", 0)),
        )
    else:
        path = str(spec)
    env = make_team_env(config.env, env_config)
    try:
        read_demos(path, env=env)
    finally:
        env.close()
    return path


class MIFQTorchLearner(DQNLearner, TorchLearner):
    @override(DQNLearner)
    def build(self) -> None:
        super().build()
        path = resolve_expert_data(self.config)
        self._expert = ExpertBuffer.from_path(path, device=self._device)
        self._expert_gen = torch.Generator(device=self._device)
        self._expert_gen.manual_seed(int(self.config.seed or 0) + 10_007 * self._learner_index)
        logger.info("MIFQ learner: %d expert transitions from %s on %s", len(self._expert), path, self._device)

    @classmethod
    @override(DQNLearner)
    def rl_module_required_apis(cls) -> list:
        return [TargetNetworkAPI]

    @override(TorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        module = self.module[module_id].unwrapped()
        exp = self._expert.sample(config.expert_batch_size, generator=self._expert_gen)
        n_e = exp[schema.ACTIONS].shape[0]
        # Offline updates carry no replay rows (MIFQ.training_step passes only the EXPERT_ONLY marker).
        n_r = 0 if EXPERT_ONLY in batch else batch[Columns.ACTIONS].shape[0]

        # Rows [0, n_e) are expert, [n_e, n_e + n_r) replay; one forward pass over both.
        def join(expert_col, *replay_path):
            e = exp[expert_col]
            if n_r == 0:
                return e
            r = batch
            for key in replay_path:
                r = r[key]
            return torch.cat([e, r.to(e.dtype)], dim=0)

        o = join(schema.OBS, Columns.OBS, OBS)  # (B, n, d)
        o_next = join(schema.NEXT_OBS, Columns.NEXT_OBS, OBS)  # (B, n, d)
        mask = join(schema.ACTION_MASK, Columns.OBS, ACTION_MASK)  # (B, n, A)
        mask_next = join(schema.NEXT_ACTION_MASK, Columns.NEXT_OBS, ACTION_MASK)  # (B, n, A)
        state = join(schema.STATE, Columns.OBS, STATE)  # (B, s)
        state_next = join(schema.NEXT_STATE, Columns.NEXT_OBS, STATE)  # (B, s)
        actions = join(schema.ACTIONS, Columns.ACTIONS)  # (B, n) int64
        # Terminated only: MPE episodes end by truncation, through which we bootstrap.
        done = join(schema.TERMINATED, Columns.TERMINATEDS)  # (B,) float

        q = module.q_values(o)  # (B, n, A)
        q_taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, n, 1) -> (B, n)
        v_cur = soft_value(q, mask, config.alpha)  # (B, n)
        # V(S') of the recovered reward r = Q(S, A) - gamma V(S'): target net (no gradient) or online net.
        if config.use_target_network:
            with torch.no_grad():
                q_next = module.forward_target({Columns.OBS: {OBS: o_next}})[TARGET_Q_VALUES]
        else:
            q_next = module.q_values(o_next)
        v_next = soft_value(q_next, mask_next, config.alpha)  # (B, n)
        # V(S') of the value term: the online net lets a trajectory's rows telescope (MIFQConfig.value_next).
        v_next_val = v_next
        if config.value_next == "online" and config.use_target_network:
            v_next_val = soft_value(module.q_values(o_next), mask_next, config.alpha)  # (B, n)

        v_rows = value_row_slice(config.value_rows, n_e, n_r)
        rep = slice(n_e, n_e + n_r) if (config.chi2_replay and n_r) else None
        is_expert = torch.arange(n_e + n_r, device=q.device) < n_e  # (B,)
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
            q_taken_r=None if rep is None else q_taken[rep],
            v_next_r=None if rep is None else v_next[rep],
            done_r=None if rep is None else done[rep],
            state_r=None if rep is None else state[rep],
            value_is_expert=is_expert[v_rows],
        )
        if config.bc_coef:
            tau_bc = config.alpha if config.bc_temperature is None else config.bc_temperature
            bc = bc_term(q[:n_e], actions[:n_e], mask[:n_e], tau_bc)
            loss = loss + config.bc_coef * bc
            terms = {**terms, BC_TERM: bc.detach(), "loss": loss.detach()}
        if config.grad_penalty and n_r:
            k = min(n_e, n_r)
            gp = q_gradient_penalty(module.q_values, o[:k], o[n_e : n_e + k], self._expert_gen)
            loss = loss + config.grad_penalty * gp
            terms = {**terms, GRAD_PENALTY: gp.detach(), "loss": loss.detach()}
        raise_if_not_finite("MIFQ", loss, terms, "Lower `lr`, raise `alpha`, or set `grad_clip`.")
        with torch.no_grad():
            q_avail = q.masked_select(mask > 0.5)
            value_replay = v_rows.stop - max(v_rows.start, n_e)
            metrics = {
                **terms,
                Q_MEAN: q_avail.mean(),
                Q_ABS_MAX: q_avail.abs().max(),
                # Rows that entered the loss in this update, by kind (replay: value term or χ², whichever is more).
                EXPERT_ROWS: float(n_e),
                REPLAY_ROWS: float(max(value_replay, 0 if rep is None else n_r)),
                REPLAY_ROWS_SAMPLED: float(n_r),
            }
        self.metrics.log_dict(metrics, key=module_id, window=1)
        return loss


def value_row_slice(value_rows: str, n_e: int, n_r: int) -> slice:
    """Rows of the value term among [expert (n_e) | replay (n_r)]: "expert", "replay" (eq. 9 as written) or "all"
    (IQ-Learn online). With no replay rows (offline) every choice falls back to the expert rows."""
    if value_rows == "expert" or n_r == 0:
        return slice(0, n_e)
    if value_rows == "replay":
        return slice(n_e, n_e + n_r)
    return slice(0, n_e + n_r)
