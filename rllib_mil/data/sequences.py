"""Whole-episode sequences for recurrent learners: one padded layout for expert and replay data.

A batch of B episodes of lengths L_b ≤ T (the longest in the batch) is

    SEQ_OBS        (B, T+1, n, d)  o_0 .. o_L (o_L: the observation after the last action), zeros after it
    SEQ_STATE      (B, T+1, s)
    SEQ_MASK       (B, T+1, n, A)  action masks of those observations (zeros after the end)
    SEQ_ACTIONS    (B, T, n)       a_0 .. a_{L-1}
    SEQ_TERMINATED (B, T)          1.0 on a terminating last step
    SEQ_VALID      (B, T)          1.0 for the L_b real steps, 0.0 for padding
    SEQ_REWARDS    (B, T)          r_0 .. r_{L-1} (replay episodes only: RL learners bootstrap from them)

Every sequence starts at its episode's first step, so a recurrent net run from its zero initial state sees
exactly what it saw when acting: no burn-in is needed. Padding sits after the end, where a causal net's outputs
cannot reach back into the real steps, and ``SEQ_VALID`` drops the padded steps from the loss. This file is the
one place where padding happens (``pad_sequences``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE

SEQ_OBS = "seq_obs"
SEQ_STATE = "seq_state"
SEQ_MASK = "seq_action_mask"
SEQ_ACTIONS = "seq_actions"
SEQ_TERMINATED = "seq_terminated"
SEQ_VALID = "seq_valid"
SEQ_KEYS = (SEQ_OBS, SEQ_STATE, SEQ_MASK, SEQ_ACTIONS, SEQ_TERMINATED, SEQ_VALID)
# Present in sequences made from env-runner episodes (``episode_arrays``), not in expert sequences.
SEQ_REWARDS = "seq_rewards"


def episode_arrays(episode) -> dict[str, np.ndarray]:
    """One RLlib ``SingleAgentEpisode`` of a team env as unpadded arrays: obs (L+1, n, d), state (L+1, s),
    mask (L+1, n, A), actions (L, n), terminated (L,), rewards (L,)."""
    obs = episode.get_observations()
    if not isinstance(obs, dict):  # not numpy-ized: a list of per-step dicts
        obs = {k: np.stack([o[k] for o in obs]) for k in (OBS, STATE, ACTION_MASK)}
    actions = np.asarray(episode.get_actions())
    length = actions.shape[0]
    terminated = np.zeros(length, np.float32)
    if length and episode.is_terminated:
        terminated[-1] = 1.0
    return {
        SEQ_OBS: np.asarray(obs[OBS])[: length + 1],
        SEQ_STATE: np.asarray(obs[STATE])[: length + 1],
        SEQ_MASK: np.asarray(obs[ACTION_MASK])[: length + 1],
        SEQ_ACTIONS: actions,
        SEQ_TERMINATED: terminated,
        SEQ_REWARDS: np.asarray(episode.get_rewards(), np.float32)[:length],
    }


def pad_sequences(episodes: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Unpadded episodes (``episode_arrays``) -> one padded batch in the layout of the module docstring."""
    if not episodes:
        raise ValueError("pad_sequences needs at least one episode")
    lengths = [int(e[SEQ_ACTIONS].shape[0]) for e in episodes]
    if min(lengths) < 1:
        raise ValueError("pad_sequences: every episode needs at least one step")
    B, T = len(episodes), max(lengths)
    first = episodes[0]

    def zeros(key, steps):
        return np.zeros((B, steps) + first[key].shape[1:], dtype=np.float32 if key != SEQ_ACTIONS else np.int64)

    out = {SEQ_OBS: zeros(SEQ_OBS, T + 1), SEQ_STATE: zeros(SEQ_STATE, T + 1), SEQ_MASK: zeros(SEQ_MASK, T + 1),
           SEQ_ACTIONS: zeros(SEQ_ACTIONS, T), SEQ_TERMINATED: np.zeros((B, T), np.float32),
           SEQ_VALID: np.zeros((B, T), np.float32)}
    for b, (e, L) in enumerate(zip(episodes, lengths)):
        for key in (SEQ_OBS, SEQ_STATE, SEQ_MASK):
            out[key][b, : L + 1] = e[key][: L + 1]
        out[SEQ_ACTIONS][b, :L] = e[SEQ_ACTIONS]
        out[SEQ_TERMINATED][b, :L] = e[SEQ_TERMINATED]
        out[SEQ_VALID][b, :L] = 1.0
    if all(SEQ_REWARDS in e for e in episodes):
        out[SEQ_REWARDS] = np.zeros((B, T), np.float32)
        for b, (e, L) in enumerate(zip(episodes, lengths)):
            out[SEQ_REWARDS][b, :L] = e[SEQ_REWARDS]
    return out
