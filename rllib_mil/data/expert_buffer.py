"""Expert demonstrations preloaded as torch tensors on the learner's device (no Ray Data in the loop)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from rllib_mil.data import schema as S
from rllib_mil.data.demos import Demos, read_demos

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


def _to_tensor(a: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a).to(dtype=dtype, device=device)


class ExpertBuffer:
    """All expert team transitions as tensors: obs (N, n, d), state (N, s), action_mask (N, n, A),
    actions (N, n) int64, reward (N,), agent_rewards (N, n), next_obs / next_state / next_action_mask,
    terminated / truncated (N,) float32. ``sample`` draws uniformly with replacement."""

    def __init__(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None):
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

    @classmethod
    def from_demos(cls, demos: Demos, device: str | torch.device = "cpu") -> "ExpertBuffer":
        cols = demos.columns()
        tensors = {k: _to_tensor(cols[k], dt, device) for k, dt in BUFFER_COLUMNS.items()}
        return cls(tensors, demos.metadata)

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
        return ExpertBuffer({k: v.to(device) for k, v in self.tensors.items()}, self.metadata)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement, keyed by the schema's column names."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        gen_device = generator.device if generator is not None else self.device
        idx = torch.randint(self._n, (batch_size,), generator=generator, device=gen_device)
        idx = idx.to(self.device)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}

    def __repr__(self) -> str:
        env_id = self.metadata.get(S.META_ENV_ID, "?")
        return f"ExpertBuffer({env_id!r}, transitions={self._n}, device={self.device})"
