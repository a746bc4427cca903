"""Expert demonstrations preloaded as torch tensors on the learner's device (no Ray Data in the loop)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from rllib_mil.data import schema as S
from rllib_mil.data.demos import Demos, read_demos
from rllib_mil.data.sequences import SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_STATE, SEQ_TERMINATED, SEQ_VALID

# Columns the buffer keeps, with their torch dtype (terminated/truncated become float32 0/1 for losses).
BUFFER_COLUMNS: dict[str, torch.dtype] = {
    S.OBS: torch.float32,
    S.STATE: torch.float32,
    S.ACTION_MASK: torch.float32,
    S.ACTIONS: torch.int64,
    S.REWARD: torch.float32,
    S.AGENT_REWARDS: torch.float32,
    S.NEXT_OBS: torch.float32,
    S.NEXT_STATE: torch.float32,
    S.NEXT_ACTION_MASK: torch.float32,
    S.TERMINATED: torch.float32,
    S.TRUNCATED: torch.float32,
}


def _episode_index(episode_id: np.ndarray, t: np.ndarray, device) -> torch.Tensor:
    """(E, L_max) row indices of each episode's steps in time order, -1 after the episode's end."""
    order = np.lexsort((np.asarray(t), np.asarray(episode_id)))  # by episode, then by t
    ids = np.asarray(episode_id)[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    lengths = np.diff(np.r_[starts, len(ids)])
    index = np.full((len(starts), int(lengths.max())), -1, dtype=np.int64)
    for e, (s0, L) in enumerate(zip(starts, lengths)):
        index[e, :L] = order[s0 : s0 + L]
    return torch.from_numpy(index).to(device)


def _to_tensor(a: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a).to(dtype=dtype, device=device)


class ExpertBuffer:
    """All expert team transitions as tensors: obs (N, n, d), state (N, s), action_mask (N, n, A),
    actions (N, n) int64, reward (N,), agent_rewards (N, n), next_obs / next_state / next_action_mask,
    terminated / truncated (N,) float32. ``sample`` draws uniformly with replacement."""

    def __init__(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None,
                 episode_index: torch.Tensor | None = None):
        missing = [k for k in BUFFER_COLUMNS if k not in tensors]
        if missing:
            raise ValueError(f"ExpertBuffer needs tensors for {missing}")
        sizes = {k: int(v.shape[0]) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"ExpertBuffer tensors have different lengths: {sizes}")
        self.tensors = dict(tensors)
        self.metadata = dict(metadata or {})
        self._n = next(iter(sizes.values()))
        if self._n == 0:
            raise ValueError("ExpertBuffer is empty")
        # (E, L_max) row indices of each episode's steps in time order, -1 after its end (sample_sequences).
        self.episode_index = episode_index

    @classmethod
    def from_demos(cls, demos: Demos, device: str | torch.device = "cpu") -> "ExpertBuffer":
        cols = demos.columns()
        tensors = {k: _to_tensor(cols[k], dt, device) for k, dt in BUFFER_COLUMNS.items()}
        return cls(tensors, demos.metadata, _episode_index(cols[S.EPISODE_ID], cols[S.T], device))

    @classmethod
    def from_path(cls, path: str | os.PathLike, env=None, device: str | torch.device = "cpu") -> "ExpertBuffer":
        """Read (and validate, against ``env`` when given) a demonstrations file into tensors on ``device``."""
        return cls.from_demos(read_demos(path, env=env), device=device)

    def __len__(self) -> int:
        return self._n

    @property
    def device(self) -> torch.device:
        return self.tensors[S.OBS].device

    def to(self, device: str | torch.device) -> "ExpertBuffer":
        index = None if self.episode_index is None else self.episode_index.to(device)
        return ExpertBuffer({k: v.to(device) for k, v in self.tensors.items()}, self.metadata, index)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement, keyed by the schema's column names."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        gen_device = generator.device if generator is not None else self.device
        idx = torch.randint(self._n, (batch_size,), generator=generator, device=gen_device)
        idx = idx.to(self.device)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}

    def sample_sequences(self, n_episodes: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``n_episodes`` whole episodes drawn uniformly with replacement, padded to the longest of them, in the
        layout of ``rllib_mil.data.sequences`` (o_0 .. o_L from each step's obs plus the last step's next obs)."""
        if self.episode_index is None:
            raise ValueError("this ExpertBuffer has no episode index (build it with from_demos / from_path)")
        if n_episodes < 1:
            raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
        gen_device = generator.device if generator is not None else self.device
        pick = torch.randint(self.episode_index.shape[0], (n_episodes,), generator=generator, device=gen_device)
        index = self.episode_index.index_select(0, pick.to(self.device))  # (B, L_max)
        valid = index >= 0  # (B, L_max)
        T = int(valid.sum(dim=1).max())
        index, valid = index[:, :T], valid[:, :T]  # (B, T)
        rows = index.clamp(min=0)
        lengths = valid.sum(dim=1)  # (B,)
        vf = valid.to(torch.float32)

        def take(col):  # (N, ...) -> (B, T, ...), zeros on padding
            x = self.tensors[col][rows.reshape(-1)].reshape(rows.shape + self.tensors[col].shape[1:])
            return x * vf.reshape(vf.shape + (1,) * (x.dim() - 2)).to(x.dtype)

        def with_last_next(col, next_col):  # o_0 .. o_L: step t's col, then the last step's next col
            seq = take(col)  # (B, T, ...)
            last = self.tensors[next_col][rows.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)]  # (B, ...)
            out = torch.cat([seq, torch.zeros_like(seq[:, :1])], dim=1)  # (B, T+1, ...)
            out[torch.arange(out.shape[0], device=out.device), lengths] = last
            return out

        return {
            SEQ_OBS: with_last_next(S.OBS, S.NEXT_OBS),
            SEQ_STATE: with_last_next(S.STATE, S.NEXT_STATE),
            SEQ_MASK: with_last_next(S.ACTION_MASK, S.NEXT_ACTION_MASK),
            SEQ_ACTIONS: take(S.ACTIONS),
            SEQ_TERMINATED: take(S.TERMINATED),
            SEQ_VALID: vf,
        }

    def __repr__(self) -> str:
        env_id = self.metadata.get(S.META_ENV_ID, "?")
        return f"ExpertBuffer({env_id!r}, transitions={self._n}, device={self.device})"
