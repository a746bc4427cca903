"""Base class of the team environments (see ``contract.py`` and DESIGN.md, "The team view").

A :class:`TeamEnv` is a plain ``gymnasium.Env`` so RLlib runs it with its single-agent machinery. Subclasses
implement two hooks, :meth:`TeamEnv._reset_team` and :meth:`TeamEnv._step_team`, and the base class does the
rest: spaces, seeding, action validation against the current mask, team reward = mean of the agents' rewards,
``info[INFO_AGENT_REWARDS]`` and the episode bookkeeping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, OBS, STATE


class MaskedMultiDiscrete(spaces.MultiDiscrete):
    """``MultiDiscrete`` whose ``sample()`` only draws actions allowed by a static availability mask.

    It *is* a ``MultiDiscrete`` (``isinstance`` checks, equality and ``contains`` are unchanged); only the default
    sampling respects ``static_mask`` (``nvec.shape + (max_n,)``, 1 = may be sampled), so that generic code that
    calls ``action_space.sample()`` (gymnasium's env checker, random rollouts) never proposes a padded action.
    A :class:`TeamEnv` also hands it the mask of its latest observation (``set_current_mask``), so a sample drawn
    mid-episode is available there too (dead agents, attack targets out of range); the observation's
    ``ACTION_MASK`` stays the source of truth for learners.
    """

    def __init__(self, nvec, static_mask, dtype=np.int64, seed=None):
        super().__init__(nvec, dtype=dtype, seed=seed)
        mask = np.asarray(static_mask, dtype=bool)
        if mask.shape[:-1] != self.nvec.shape:
            raise ValueError(f"static_mask shape {mask.shape} does not match nvec shape {self.nvec.shape}")
        if mask.shape[-1] < int(self.nvec.max()):
            raise ValueError("static_mask's last axis must cover every action index")
        if not mask.any(axis=-1).all():
            raise ValueError("static_mask must allow at least one action per dimension")
        self.static_mask = mask
        self.current_mask = None

    def set_current_mask(self, mask: np.ndarray | None) -> None:
        """Availability of the latest observation (``nvec.shape + (max_n,)``), None = the static mask only.
        Called on every env step, so it only keeps the reference; ``sample`` does the work."""
        self.current_mask = mask

    def _sampling_mask(self) -> np.ndarray:
        if self.current_mask is None:
            return self.static_mask
        mask = self.static_mask & (np.asarray(self.current_mask) > 0)
        # malformed (an agent with no action): fall back to the static mask
        return mask if mask.any(axis=-1).all() else self.static_mask

    def sample(self, mask=None, probability=None):
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        p = self._sampling_mask().astype(np.float64)
        cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
        u = self.np_random.random(self.nvec.shape + (1,))
        idx = (cdf < u).sum(axis=-1)
        idx = np.minimum(idx, self.nvec - 1)
        return idx.astype(self.dtype)

    def __repr__(self) -> str:
        return f"MaskedMultiDiscrete({self.nvec.tolist()})"


@batch_space.register(MaskedMultiDiscrete)
def _batch_masked_multi_discrete(space: MaskedMultiDiscrete, n: int = 1):
    # gymnasium's vector envs batch the action space; keep the static mask so batched samples stay valid.
    return MaskedMultiDiscrete(
        np.broadcast_to(space.nvec, (n,) + space.nvec.shape).copy(),
        np.broadcast_to(space.static_mask, (n,) + space.static_mask.shape).copy(),
        dtype=space.dtype,
        seed=None if space.np_random is None else int(space.np_random.integers(2**31)),
    )


@dataclass
class TeamStep:
    """What a subclass's ``_step_team`` returns."""

    obs: np.ndarray  # (n_agents, obs_dim)
    state: np.ndarray  # (state_dim,)
    action_mask: np.ndarray  # (n_agents, n_actions)
    agent_rewards: np.ndarray  # (n_agents,)
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


class TeamEnv(gym.Env):
    """One cooperative team as a single gymnasium env (observation ``Dict``, ``MultiDiscrete`` action).

    Attributes: ``env_id``, ``env_config`` (resolved, JSON-serialisable), ``n_agents``, ``obs_dim``,
    ``state_dim``, ``n_actions``, ``agent_names``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        env_id: str,
        env_config: dict,
        agent_names: list[str],
        obs_dim: int,
        state_dim: int,
        n_actions: int,
        static_mask: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.env_id = env_id
        self.env_config = dict(env_config)
        self.agent_names = list(agent_names)
        self.n_agents = len(self.agent_names)
        self.obs_dim = int(obs_dim)
        self.state_dim = int(state_dim)
        self.n_actions = int(n_actions)
        n, d, a = self.n_agents, self.obs_dim, self.n_actions
        if static_mask is None:
            static_mask = np.ones((n, a), dtype=np.float32)
        self.static_mask = np.asarray(static_mask, dtype=np.float32).reshape(n, a)
        self.observation_space = spaces.Dict(
            {
                OBS: spaces.Box(-np.inf, np.inf, (n, d), np.float32),
                STATE: spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32),
                ACTION_MASK: spaces.Box(0.0, 1.0, (n, a), np.float32),
            }
        )
        self.action_space = MaskedMultiDiscrete([a] * n, self.static_mask > 0, dtype=np.int64)
        self._mask: np.ndarray | None = None  # mask of the current observation; None = reset needed

    # ----------------------------------------------------------------------------------------------- API
    def spec_dict(self) -> dict:
        """What demonstrations record about the env they were collected on (and are validated against)."""
        return {
            "env_id": self.env_id,
            "env_config": dict(self.env_config),
            "n_agents": self.n_agents,
            "obs_dim": self.obs_dim,
            "state_dim": self.state_dim,
            "n_actions": self.n_actions,
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, state, mask, info = self._reset_team(self.np_random, options)
        return self._observation(obs, state, mask), dict(info)

    def step(self, action):
        if self._mask is None:
            raise RuntimeError(f"{self.env_id}: call reset() before step() (and again after an episode ends)")
        actions = self.validate_actions(action, self._mask)
        out = self._step_team(actions)
        agent_rewards = np.asarray(out.agent_rewards, dtype=np.float64).reshape(self.n_agents)
        reward = float(agent_rewards.mean())
        info = dict(out.info)
        info[INFO_AGENT_REWARDS] = agent_rewards.astype(np.float32)
        obs = self._observation(out.obs, out.state, out.action_mask)
        if out.terminated or out.truncated:
            self._mask = None
        return obs, reward, bool(out.terminated), bool(out.truncated), info

    def validate_actions(self, action, mask: np.ndarray | None = None) -> np.ndarray:
        """Return ``action`` as int64 ``(n_agents,)``; raise ``ValueError`` if malformed or not available."""
        arr = np.asarray(action)
        if arr.shape != (self.n_agents,):
            raise ValueError(
                f"{self.env_id}: expected an action of shape ({self.n_agents},) (one index per agent "
                f"{self.agent_names}), got shape {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise ValueError(f"{self.env_id}: actions must be integers, got {arr.tolist()} ({arr.dtype})")
        arr = arr.astype(np.int64)
        mask = self.static_mask if mask is None else mask
        for i, a in enumerate(arr):
            if not 0 <= a < self.n_actions:
                raise ValueError(
                    f"{self.env_id}: action {int(a)} of agent {i} ({self.agent_names[i]}) is out of range "
                    f"[0, {self.n_actions})"
                )
            if mask[i, a] <= 0:
                allowed = np.flatnonzero(mask[i] > 0).tolist()
                raise ValueError(
                    f"{self.env_id}: action {int(a)} of agent {i} ({self.agent_names[i]}) is not available "
                    f"under the action mask; available actions: {allowed}"
                )
        return arr

    # ------------------------------------------------------------------------------------- subclass hooks
    def _reset_team(self, rng: np.random.Generator, options: dict | None):
        """Start an episode; return ``(obs (n,d), state (s,), mask (n,A), info)``. Draw randomness from rng."""
        raise NotImplementedError

    def _step_team(self, actions: np.ndarray) -> TeamStep:
        """Apply validated int64 ``(n_agents,)`` actions."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- helpers
    def _observation(self, obs, state, mask) -> dict[str, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32).reshape(self.n_agents, self.obs_dim)
        state = np.asarray(state, dtype=np.float32).reshape(self.state_dim)
        mask = np.asarray(mask, dtype=np.float32).reshape(self.n_agents, self.n_actions)
        self._mask = mask
        self.action_space.set_current_mask(mask)
        return {OBS: obs.copy(), STATE: state.copy(), ACTION_MASK: mask.copy()}

    def __str__(self) -> str:
        return self.__repr__()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.env_id!r}, n_agents={self.n_agents}, obs_dim={self.obs_dim}, "
            f"state_dim={self.state_dim}, n_actions={self.n_actions}, env_config={self.env_config})"
        )
