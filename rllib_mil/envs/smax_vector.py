"""Many SMAX battles stepped as one: a gymnasium ``VectorEnv`` whose reset and step are single vmapped, jitted JAX
calls over every battle (``smax/...`` team envs, see smax.py).

RLlib's env runners step ``num_envs_per_env_runner`` envs per call. With gymnasium's ``SyncVectorEnv`` each SMAX
battle is one jitted call and nine device-to-host copies per step; here the whole batch is one call and nine copies,
whatever its size. RLlib uses it when the config asks for the env's own vectorization:

    config.env_runners(num_envs_per_env_runner=32, gym_env_vectorize_mode="vector_entry_point")

(YAML: ``gym_env_vectorize_mode: vector_entry_point``). Every other team env then gets a ``SyncVectorEnv`` of its
single envs, so the setting is safe for any env id.

Semantics are those of ``SyncVectorEnv`` over ``SMAXTeamEnv``s, step for step (tested): battle i is seeded like
``SyncVectorEnv``'s env i (``seed + i``), each battle draws its JAX keys from its own generator exactly as
``SMAXTeamEnv`` does, and a finished battle restarts on the next ``step`` call (gymnasium's NEXT_STEP autoreset:
that call returns the new battle's first observation, reward 0 and no termination). Infos use gymnasium's vector
format (``{key: values, "_key": present}``).
"""
from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, INFO_BATTLE_WON, OBS, STATE
from rllib_mil.envs.smax import SMAXTeamEnv, _compiled, _freeze


@functools.lru_cache(maxsize=None)
def _batched(map_name: str, frozen_config: tuple):
    """(jitted batched reset(reset_keys), jitted batched step(keys, states, actions, restart, kept_keys,
    reset_keys)) for one map and configuration.

    The step restarts the battles flagged in ``restart`` (their new state from ``reset_keys``, their next step key
    ``kept_keys``) instead of stepping them. One function for both, so one compilation: with tens of battles per
    runner some battle restarts on most steps anyway.
    """
    import jax
    import jax.numpy as jnp

    _, reset_one, step_one = _compiled(map_name, frozen_config)
    reset_all = jax.vmap(reset_one)  # (N, 2) keys -> batched (state, obs, state_vec, mask, alive)
    step_all = jax.vmap(step_one)

    def step(keys, states, actions, restart, kept_keys, reset_keys):
        key, st, obs, state, mask, reward, terminated, truncated, won, dead = step_all(keys, states, actions)
        r_st, r_obs, r_state, r_mask, _ = reset_all(reset_keys)

        def pick(a, b):  # restart ? b : a, broadcast over each leaf's trailing axes
            return jnp.where(restart.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)

        z = jnp.zeros_like
        return (pick(key, kept_keys), jax.tree.map(pick, st, r_st), pick(obs, r_obs), pick(state, r_state),
                pick(mask, r_mask), pick(reward, z(reward)), pick(terminated, z(terminated)),
                pick(truncated, z(truncated)), pick(won, z(won)), tuple(pick(d, z(d)) for d in dead))

    def reset(reset_keys):
        st, obs, state, mask, _ = reset_all(reset_keys)
        return st, obs, state, mask

    return jax.jit(reset), jax.jit(step)


class SMAXVectorTeamEnv(gym.vector.VectorEnv):
    """``num_envs`` battles of one SMAX map and configuration, stepped by one JAX call (see module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, env_id: str, env_config: dict | None = None, num_envs: int = 1) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.single_env = SMAXTeamEnv(env_id, env_config)  # spaces, action checks, the resolved config
        self.env_id, self.num_envs = env_id, int(num_envs)
        self.env_config = self.single_env.env_config
        self._reset_fn, self._step_fn = _batched(self.single_env.map_name, _freeze(self.env_config))
        self.single_observation_space = self.single_env.observation_space
        self.single_action_space = self.single_env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._keys = self._states = self._mask = None
        self._restart = np.zeros(self.num_envs, dtype=bool)

    def _key_pairs(self, which) -> np.ndarray:
        """(N, 2, 2): for each battle in ``which`` the (kept key, reset key) pair that ``SMAXTeamEnv._reset_team``
        derives from its generator's next draw; zeros elsewhere (no draw made)."""
        import jax

        pairs = np.zeros((self.num_envs, 2, 2), np.uint32)
        for i in np.flatnonzero(which):
            pairs[i] = np.asarray(jax.random.split(jax.random.PRNGKey(int(self._rngs[i].integers(2**31 - 1)))))
        return pairs

    def reset(self, *, seed=None, options=None):
        import jax

        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self._rngs = [np.random.default_rng(s) for s in seeds]
        pairs = self._key_pairs(np.ones(self.num_envs, bool))
        self._states, obs, state, mask = self._reset_fn(pairs[:, 1])
        self._keys = pairs[:, 0]
        obs, state, mask = jax.device_get((obs, state, mask))
        self._mask = mask
        self._restart[:] = False
        return {OBS: obs, STATE: state, ACTION_MASK: mask}, {}

    def step(self, actions):
        import jax

        if self._mask is None:
            raise RuntimeError(f"{self.env_id}: call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.single_env.n_agents):
            raise ValueError(f"{self.env_id}: expected actions of shape {(self.num_envs, self.single_env.n_agents)}, "
                             f"got {actions.shape}")
        live = ~self._restart
        picked = np.clip(actions, 0, self._mask.shape[-1] - 1)
        avail = np.take_along_axis(self._mask, picked[..., None], axis=-1)[..., 0] > 0  # (N, n)
        bad = live & ~(avail & (actions == picked)).all(axis=-1)
        for i in np.flatnonzero(bad):  # the single env's check and message, where a stepped battle got one
            self.single_env.validate_actions(actions[i], self._mask[i])
        pairs = self._key_pairs(self._restart)
        out = self._step_fn(self._keys, self._states, picked.astype(np.int32), self._restart, pairs[:, 0], pairs[:, 1])
        self._keys, self._states = out[0], out[1]
        obs, state, mask, reward, terminated, truncated, won, dead = jax.device_get(out[2:])
        self._mask = mask
        reward = np.asarray(reward, dtype=np.float64)
        infos = {
            INFO_BATTLE_WON: np.asarray(won, bool),
            "dead_allies": np.asarray(dead[0], np.int64),
            "dead_enemies": np.asarray(dead[1], np.int64),
            INFO_AGENT_REWARDS: np.repeat(reward[:, None], self.single_env.n_agents, axis=1).astype(np.float32),
        }
        # Vector-info masks: a restarted battle reports the reset's (empty) info.
        infos.update({f"_{k}": live.copy() for k in list(infos)})
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        self._restart = terminated | truncated
        return {OBS: obs, STATE: state, ACTION_MASK: mask}, reward, terminated, truncated, infos

    def close_extras(self, **kwargs):
        self.single_env.close()
