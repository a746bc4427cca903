"""The replay buffer of the off-policy team algorithms: RLlib's ``EpisodeReplayBuffer`` (episodes, capacity,
eviction, checkpoint state, metrics, whole episodes for recurrent learners) plus the same steps as flat arrays.

RLlib's one-step path draws a transition by slicing a ``SingleAgentEpisode`` (a new episode object per row), and the
learner connector pipeline then turns those episodes into a batch: measured on simple_spread, that took more time
than the update itself (docs/performance.md). Here each stored step is converted once, when it is added, and a draw
is one fancy index per column. ``sample_transitions`` returns the train batch in the layout the learner connectors
would have built (so learners read ``batch[Columns.OBS][STATE]`` either way):

    Columns.OBS        {OBS (B, n, d), STATE (B, s), ACTION_MASK (B, n, A)}  o_t
    Columns.NEXT_OBS   the same for o_{t+1}
    Columns.ACTIONS    (B, n) int64
    Columns.REWARDS    (B,) float32 team reward of the step
    Columns.TERMINATEDS (B,) float32, 1.0 on a terminating last step (truncation bootstraps)
    AGENT_REWARDS      (B, n) float32 per-agent rewards of the step (info[INFO_AGENT_REWARDS]; NaN where absent)
    BEHAVIOUR_LOGP     (B, n) float32 log mu_i(a_i|o_i), where the env runners' module outputs it

Each observation is stored once (o_{t+1} is step t's next observation and step t+1's own), so the copy costs about as
much memory as the episodes themselves. The arrays grow by appending (an add costs what it adds, not the buffer's
size); the steps of episodes RLlib evicts are dropped from the draw at once and from the arrays when they next fill
up. The drawable steps are exactly the steps of the buffer's episodes, ordered episode by episode, each in time
order, which is also the order ``set_state`` rebuilds from the restored episodes, so a resumed run draws the same rows.
Draws are uniform over steps, as RLlib's, from ``rng``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer

from rllib_mil.data.sequences import SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_REWARDS, SEQ_STATE, SEQ_TERMINATED, \
    episode_arrays
from rllib_mil.data.schema import AGENT_REWARDS
from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, OBS, STATE

# Extra model output of exploration (the team modules' forward_exploration): log-probability of each agent's sampled
# action under the rollout policy, (B, n); kept per step, so a learner can importance-weight replay rows
# (MIFQConfig.replay_is_weights).
BEHAVIOUR_LOGP = "behaviour_logp"

# The value of replay_buffer_config["type"] that builds this buffer.
TEAM_REPLAY_BUFFER = "rllib_mil.data.team_replay.TeamEpisodeReplayBuffer"

_OBS_PARTS = ((OBS, SEQ_OBS), (STATE, SEQ_STATE), (ACTION_MASK, SEQ_MASK))
# Key of a chunk's L+1 observations in transition_arrays (not a train-batch column).
OBS_SEQ = "obs_seq"


def transition_arrays(episode) -> dict[str, Any]:
    """The L steps of one (chunk of an) RLlib team episode as flat arrays: ``OBS_SEQ`` {OBS, STATE, ACTION_MASK} with
    the L+1 observations o_0 .. o_L (each stored once: o_{t+1} is step t's next observation and step t+1's own), and
    the L steps' ACTIONS, REWARDS, TERMINATEDS, AGENT_REWARDS (and BEHAVIOUR_LOGP); ``{}`` for an episode without
    steps."""
    seq = episode_arrays(episode)
    length = seq[SEQ_ACTIONS].shape[0]
    if length == 0:
        return {}
    n_agents = seq[SEQ_ACTIONS].shape[1]
    # infos[t + 1] is what the env returned with the step from t: its per-agent rewards.
    infos = episode.get_infos(slice(1, length + 1))
    agent_rewards = np.full((length, n_agents), np.nan, np.float32)
    for t, info in enumerate(infos):
        if isinstance(info, dict) and INFO_AGENT_REWARDS in info:
            agent_rewards[t] = np.asarray(info[INFO_AGENT_REWARDS], np.float32)
    rows = {
        OBS_SEQ: {key: seq[part][: length + 1] for key, part in _OBS_PARTS},
        Columns.ACTIONS: seq[SEQ_ACTIONS].astype(np.int64),
        Columns.REWARDS: seq[SEQ_REWARDS],
        Columns.TERMINATEDS: seq[SEQ_TERMINATED],
        AGENT_REWARDS: agent_rewards,
    }
    if BEHAVIOUR_LOGP in episode.extra_model_outputs:
        logp = episode.get_extra_model_outputs(BEHAVIOUR_LOGP, slice(0, length))
        rows[BEHAVIOUR_LOGP] = np.asarray(logp, np.float32).reshape(length, n_agents)
    return rows


class TeamEpisodeReplayBuffer(EpisodeReplayBuffer):
    """``EpisodeReplayBuffer`` whose steps are also kept as flat transition arrays for fast one-step draws
    (``sample_transitions``). Everything else (``add``'s eviction, ``sample``, state, metrics) is RLlib's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reset_rows()

    def _reset_rows(self) -> None:
        self._obs: dict[str, np.ndarray] = {}  # OBS_SEQ columns, rows [0, _n_obs): every chunk's L+1 observations
        self._steps: dict[str, np.ndarray] = {}  # step columns, rows [0, _n_steps), in arrival order
        self._obs_row = np.zeros(0, np.int64)  # (steps,) row of o_t in self._obs
        self._episode = np.zeros(0, np.int64)  # (steps,) RLlib's episode index of the step
        self._n_obs = self._n_steps = 0
        self._order: np.ndarray | None = None  # drawable steps in draw order; None = recompute after an add

    def add(self, episodes) -> None:
        episodes = episodes if isinstance(episodes, (list, tuple)) else [episodes]
        converted = [(ep.id_, transition_arrays(ep)) for ep in episodes]
        super().add(episodes)
        for episode_id, rows in converted:
            if rows and episode_id in self.episode_id_to_index:  # not already evicted again
                self._append(self.episode_id_to_index[episode_id], rows)
        self._order = None

    def set_state(self, state) -> None:
        super().set_state(state)
        self._reset_rows()
        for ep in self.episodes:
            rows = transition_arrays(ep)
            if rows:
                self._append(self.episode_id_to_index[ep.id_], rows)

    def _append(self, episode_index: int, rows: dict[str, Any]) -> None:
        obs, n_new = rows[OBS_SEQ], len(rows[Columns.REWARDS])
        if not self._steps:  # the first chunk fixes the columns
            self._obs = {k: np.empty((0,) + v.shape[1:], v.dtype) for k, v in obs.items()}
            self._steps = {k: np.empty((0,) + v.shape[1:], v.dtype) for k, v in rows.items() if k != OBS_SEQ}
        if self._n_steps + n_new > len(self._episode) or self._n_obs + n_new + 1 > len(self._obs[OBS]):
            self._compact()
            self._grow(self._n_obs + n_new + 1, self._n_steps + n_new)
        o0, s0 = self._n_obs, self._n_steps
        for k, v in obs.items():
            self._obs[k][o0 : o0 + n_new + 1] = v
        for k, col in self._steps.items():
            # A column this chunk lacks (e.g. no behaviour log-probs) is NaN for its steps.
            col[s0 : s0 + n_new] = rows[k] if k in rows else np.nan
        self._obs_row[s0 : s0 + n_new] = o0 + np.arange(n_new)
        self._episode[s0 : s0 + n_new] = episode_index
        self._n_obs, self._n_steps = o0 + n_new + 1, s0 + n_new

    def _grow(self, n_obs: int, n_steps: int) -> None:
        """Room for at least ``n_obs`` observation rows and ``n_steps`` steps (doubling, so appends are amortised)."""
        def fit(a, n):
            if len(a) >= n:
                return a
            out = np.empty((max(n, 2 * len(a)),) + a.shape[1:], a.dtype)
            out[: len(a)] = a
            return out

        self._obs = {k: fit(v, n_obs) for k, v in self._obs.items()}
        self._steps = {k: fit(v, n_steps) for k, v in self._steps.items()}
        self._obs_row, self._episode = fit(self._obs_row, n_steps), fit(self._episode, n_steps)

    def _compact(self) -> None:
        """Drop the rows of evicted episodes (arrival order kept); O(buffer size), run only when the arrays are full."""
        keep = np.flatnonzero(self._episode[: self._n_steps] >= self._num_episodes_evicted)  # (kept steps,)
        if len(keep) == self._n_steps:
            return
        rows = self._obs_row[keep]
        obs_keep = np.unique(np.concatenate([rows, rows + 1]))  # the o_t and o_{t+1} rows the kept steps read
        self._obs = {k: v[obs_keep] for k, v in self._obs.items()}
        self._steps = {k: v[keep] for k, v in self._steps.items()}
        self._obs_row, self._episode = np.searchsorted(obs_keep, rows), self._episode[keep]
        self._n_obs, self._n_steps = len(obs_keep), len(keep)
        self._order = None

    def _draw_order(self) -> np.ndarray:
        """Positions of the drawable steps, episode by episode (a stable sort keeps each episode's steps in time
        order): the layout set_state rebuilds from whole episodes."""
        if self._order is None:
            live = np.flatnonzero(self._episode[: self._n_steps] >= self._num_episodes_evicted)
            self._order = live[np.argsort(self._episode[live], kind="stable")]
        return self._order

    def num_transitions(self) -> int:
        return len(self._draw_order())

    def sample_transitions(self, batch_size: int) -> dict[str, Any]:
        """``batch_size`` stored steps drawn uniformly with replacement (from ``rng``), as numpy columns in the layout
        of the module docstring."""
        order = self._draw_order()
        if len(order) == 0:
            raise ValueError("the replay buffer holds no transitions yet: sample into it before drawing rows")
        idx = order[self.rng.integers(len(order), size=batch_size)]
        self.sampled_timesteps += batch_size
        row = self._obs_row[idx]
        out = {k: v[idx] for k, v in self._steps.items()}
        out[Columns.OBS] = {k: v[row] for k, v in self._obs.items()}
        out[Columns.NEXT_OBS] = {k: v[row + 1] for k, v in self._obs.items()}
        return out
