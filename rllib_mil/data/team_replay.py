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
much memory as the episodes themselves. The flat rows are exactly the steps of the buffer's episodes: a chunk is dropped when RLlib evicts its episode, and
``set_state`` rebuilds the rows from the restored episodes. Draws are uniform over steps, as RLlib's, from ``rng``.
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
# Key of a chunk's L+1 observations in transition_arrays (not a train-batch column), and of each step's row in them.
OBS_SEQ = "obs_seq"
_OBS_ROW = "_obs_row"


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


def _map(fn, rows: dict[str, Any], path: tuple = ()) -> dict[str, Any]:
    """``fn(path, array)`` over the (nested) columns of ``rows``."""
    return {k: _map(fn, v, path + (k,)) if isinstance(v, dict) else fn(path + (k,), v) for k, v in rows.items()}


def _at(rows: dict[str, Any], path: tuple):
    for key in path:
        rows = rows[key]
    return rows


class TeamEpisodeReplayBuffer(EpisodeReplayBuffer):
    """``EpisodeReplayBuffer`` whose steps are also kept as flat transition arrays for fast one-step draws
    (``sample_transitions``). Everything else (``add``'s eviction, ``sample``, state, metrics) is RLlib's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._chunks: list[tuple[int, dict[str, Any]]] = []  # (episode index, transition_arrays), in add order
        self._flat: dict[str, Any] | None = None  # the chunks concatenated; rebuilt after an add or an eviction

    def add(self, episodes) -> None:
        episodes = episodes if isinstance(episodes, (list, tuple)) else [episodes]
        converted = [(ep.id_, transition_arrays(ep)) for ep in episodes]
        super().add(episodes)
        for episode_id, rows in converted:
            if rows and episode_id in self.episode_id_to_index:  # not already evicted again
                self._chunks.append((self.episode_id_to_index[episode_id], rows))
        # RLlib evicts whole episodes from the front; their index is below the evicted count.
        self._chunks = [(e, rows) for e, rows in self._chunks if e >= self._num_episodes_evicted]
        self._flat = None

    def set_state(self, state) -> None:
        super().set_state(state)
        self._chunks = [(self.episode_id_to_index[ep.id_], transition_arrays(ep)) for ep in self.episodes]
        self._chunks = [(e, rows) for e, rows in self._chunks if rows]
        self._flat = None

    def num_transitions(self) -> int:
        return sum(len(rows[Columns.REWARDS]) for _, rows in self._chunks)

    def _flat_rows(self) -> dict[str, Any]:
        if self._flat is None:
            if not self._chunks:
                raise ValueError("the replay buffer holds no transitions yet: sample into it before drawing rows")
            # Episode by episode, each in time order (a stable sort keeps the chunks' arrival order): the same
            # layout as the one set_state rebuilds from whole episodes, so a resumed run draws the same rows.
            parts = [rows for _, rows in sorted(self._chunks, key=lambda chunk: chunk[0])]
            if len({BEHAVIOUR_LOGP in rows for rows in parts}) > 1:  # mixed: keep the column only where all have it
                parts = [{k: v for k, v in rows.items() if k != BEHAVIOUR_LOGP} for rows in parts]
            flat = _map(lambda path, _: np.concatenate([_at(p, path) for p in parts]), parts[0])
            # Row of o_t in flat[OBS_SEQ] for each step t: chunk k's observations start after the L_j + 1 of each
            # chunk j before it.
            lengths = np.array([len(p[Columns.REWARDS]) for p in parts])
            starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
            flat[_OBS_ROW] = np.concatenate([s0 + np.arange(n) for s0, n in zip(starts, lengths)])
            self._flat = flat
        return self._flat

    def sample_transitions(self, batch_size: int) -> dict[str, Any]:
        """``batch_size`` stored steps drawn uniformly with replacement (from ``rng``), as numpy columns in the layout
        of the module docstring."""
        flat = self._flat_rows()
        idx = self.rng.integers(len(flat[Columns.REWARDS]), size=batch_size)
        self.sampled_timesteps += batch_size
        row = flat[_OBS_ROW][idx]
        out = {k: v[idx] for k, v in flat.items() if k not in (OBS_SEQ, _OBS_ROW)}
        out[Columns.OBS] = {k: v[row] for k, v in flat[OBS_SEQ].items()}
        out[Columns.NEXT_OBS] = {k: v[row + 1] for k, v in flat[OBS_SEQ].items()}
        return out
