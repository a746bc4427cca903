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

from rllib_mil.algorithms.mifq.mifq_loss import mifq_loss
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
Q_ABS_MAX = "q_abs_max"
EXPERT_BATCH_SHARE = "expert_batch_share"
REPLAY_BATCH_SHARE = "replay_batch_share"


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
        obs, next_obs = batch[Columns.OBS], batch[Columns.NEXT_OBS]
        n_e = exp[schema.ACTIONS].shape[0]
        n_r = batch[Columns.ACTIONS].shape[0]

        # Rows [0, n_e) are expert, [n_e, n_e + n_r) replay; one forward pass over both.
        def join(expert_col, replay_col):
            return torch.cat([exp[expert_col], replay_col.to(exp[expert_col].dtype)], dim=0)

        o = join(schema.OBS, obs[OBS])  # (B, n, d)
        o_next = join(schema.NEXT_OBS, next_obs[OBS])  # (B, n, d)
        mask = join(schema.ACTION_MASK, obs[ACTION_MASK])  # (B, n, A)
        mask_next = join(schema.NEXT_ACTION_MASK, next_obs[ACTION_MASK])  # (B, n, A)
        state = join(schema.STATE, obs[STATE])  # (B, s)
        state_next = join(schema.NEXT_STATE, next_obs[STATE])  # (B, s)
        actions = join(schema.ACTIONS, batch[Columns.ACTIONS].long())  # (B, n)
        # Terminated only: MPE episodes end by truncation, through which we bootstrap.
        done = join(schema.TERMINATED, batch[Columns.TERMINATEDS].float())  # (B,)

        q = module.q_values(o)  # (B, n, A)
        q_taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, n, 1) -> (B, n)
        v_cur = soft_value(q, mask, config.alpha)  # (B, n)
        if config.use_target_network:
            with torch.no_grad():
                q_next = module.forward_target({Columns.OBS: {OBS: o_next}})[TARGET_Q_VALUES]
        else:
            q_next = module.q_values(o_next)
        v_next = soft_value(q_next, mask_next, config.alpha)  # (B, n)

        # Value-term rows: expert ∪ replay (IQ-Learn's online form) or expert rows only (its offline form).
        v_rows = slice(0, n_e) if config.value_rows == "expert" else slice(0, n_e + n_r)
        # Replay rows in the χ² regulariser (IQ-Learn's reference code) when chi2_replay is set.
        rep = slice(n_e, n_e + n_r) if config.chi2_replay else None
        loss, terms = mifq_loss(
            q_taken_e=q_taken[:n_e],
            v_next_e=v_next[:n_e],
            done_e=done[:n_e],
            state_e=state[:n_e],
            v_cur=v_cur[v_rows],
            v_next=v_next[v_rows],
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
        )
        raise_if_not_finite("MIFQ", loss, terms, "Lower `lr`, raise `alpha`, or set `grad_clip`.")
        with torch.no_grad():
            avail = mask > 0.5
            q_avail = q.masked_select(avail)
            metrics = {
                **{k: v for k, v in terms.items()},
                Q_MEAN: q_avail.mean(),
                Q_ABS_MAX: q_avail.abs().max(),
                EXPERT_BATCH_SHARE: n_e / (n_e + n_r),
                REPLAY_BATCH_SHARE: n_r / (n_e + n_r),
            }
        self.metrics.log_dict(metrics, key=module_id, window=1)
        return loss
