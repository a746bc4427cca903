"""MPE tasks (``mpe2``, discrete actions) as team environments.

=========================== ============================= ============================================
env id                      mpe2 module                   env_config keys (defaults)
=========================== ============================= ============================================
``mpe/simple_spread``       ``simple_spread_v3``          ``N`` (3), ``local_ratio`` (0.5), ``max_cycles`` (25)
``mpe/simple_reference``    ``simple_reference_v3``       ``local_ratio`` (0.5), ``max_cycles`` (25)
``mpe/simple_speaker_listener`` ``simple_speaker_listener_v4`` ``max_cycles`` (25)
=========================== ============================= ============================================

Facts taken from mpe2's source (``_mpe_utils/simple_env.py`` and the scenarios):

* Discrete action of a movable agent: ``move = a % 5`` with 0 no-op, 1 -x, 2 +x, 3 -y, 4 +y; a movable agent
  that can speak has ``Discrete(5 * dim_c)`` and ``say = a // 5`` (simple_reference: 5 x 10 = 50).
  An immobile speaker has ``Discrete(dim_c)`` and the action is the utterance.
* Physics: ``dt = 0.1``, damping 0.25, unit mass, force 5 per pushed axis: ``p' = p + 0.1 v``,
  ``v' = 0.75 v + 0.5 u`` (one axis per step).
* ``state()`` is the concatenation of all agents' (unpadded) local observations.
* Rewards with ``local_ratio`` (spread, reference): ``r_i = (1 - local_ratio) * global + local_ratio * local_i``;
  speaker_listener gives both agents the same reward. The team reward is the mean over agents.
* Episodes only end by truncation at ``max_cycles``.
"""
from __future__ import annotations

import importlib
import numbers
from typing import Any, Callable

import numpy as np

from rllib_mil.envs.base import TeamEnv, TeamStep


def _int_at_least(lo: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < lo:
            raise ValueError(f"env_config[{key!r}] must be an integer >= {lo}, got {value!r}")
        return int(value)

    return check


def _fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"env_config[{key!r}] must be a number in [0, 1], got {value!r}")
    return float(value)


# env id -> (mpe2 module, {key: (default, validator)})
MPE_TASKS: dict[str, tuple[str, dict[str, tuple[Any, Callable[[str, Any], Any]]]]] = {
    "mpe/simple_spread": (
        "mpe2.simple_spread_v3",
        {"N": (3, _int_at_least(1)), "local_ratio": (0.5, _fraction), "max_cycles": (25, _int_at_least(1))},
    ),
    "mpe/simple_reference": (
        "mpe2.simple_reference_v3",
        {"local_ratio": (0.5, _fraction), "max_cycles": (25, _int_at_least(1))},
    ),
    "mpe/simple_speaker_listener": (
        "mpe2.simple_speaker_listener_v4",
        {"max_cycles": (25, _int_at_least(1))},
    ),
}


def resolve_config(env_id: str, env_config: dict | None, schema: dict) -> dict:
    """Defaults + given keys, each validated. ``env_config`` may be an RLlib ``EnvContext`` (a dict subclass whose
    worker_index / num_workers / vector_index are attributes, not keys, so they never reach this check)."""
    given = dict(env_config or {})
    unknown = sorted(k for k in given if k not in schema)
    if unknown:
        raise ValueError(
            f"Unknown env_config key(s) {unknown} for {env_id}; allowed keys: {sorted(schema)}"
        )
    resolved = {}
    for key, (default, check) in schema.items():
        resolved[key] = check(key, given[key]) if key in given else default
    return resolved


class MPETeamEnv(TeamEnv):
    """An mpe2 parallel env (discrete actions) seen as one team; heterogeneous agents are zero-padded."""

    def __init__(self, env_id: str, env_config: dict | None = None) -> None:
        if env_id not in MPE_TASKS:
            raise ValueError(f"Unknown MPE task {env_id!r}; known: {sorted(MPE_TASKS)}")
        module_name, schema = MPE_TASKS[env_id]
        config = resolve_config(env_id, env_config, schema)
        module = importlib.import_module(module_name)
        self._penv = module.parallel_env(continuous_actions=False, **config)
        names = list(self._penv.possible_agents)
        obs_dims = [int(self._penv.observation_space(a).shape[0]) for a in names]
        act_dims = [int(self._penv.action_space(a).n) for a in names]
        self._obs_dims = obs_dims
        n_actions = max(act_dims)
        static_mask = np.zeros((len(names), n_actions), dtype=np.float32)
        for i, k in enumerate(act_dims):
            static_mask[i, :k] = 1.0
        super().__init__(
            env_id=env_id,
            env_config=config,
            agent_names=names,
            obs_dim=max(obs_dims),
            state_dim=int(self._penv.state_space.shape[0]),
            n_actions=n_actions,
            static_mask=static_mask,
        )
        self.max_cycles = config["max_cycles"]

    def _pad(self, obs: dict) -> np.ndarray:
        out = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)
        for i, name in enumerate(self.agent_names):
            out[i, : self._obs_dims[i]] = obs[name]
        return out

    def _reset_team(self, rng: np.random.Generator, options):
        # All randomness flows from the gymnasium generator, so reset(seed=s) and the resets after it are
        # reproducible. mpe2 draws its world only from its own generator (no noise in these three scenarios).
        obs, _ = self._penv.reset(seed=int(rng.integers(2**31 - 1)))
        return self._pad(obs), self._penv.state(), self.static_mask, {}

    def _step_team(self, actions: np.ndarray) -> TeamStep:
        act = {name: int(actions[i]) for i, name in enumerate(self.agent_names)}
        obs, rewards, terms, truncs, _ = self._penv.step(act)
        agent_rewards = np.array([rewards[name] for name in self.agent_names], dtype=np.float64)
        terminated = bool(terms) and all(terms[name] for name in self.agent_names)
        truncated = (not terminated) and bool(truncs) and all(truncs[name] for name in self.agent_names)
        return TeamStep(
            obs=self._pad(obs),
            state=self._penv.state(),
            action_mask=self.static_mask,
            agent_rewards=agent_rewards,
            terminated=terminated,
            truncated=truncated,
        )

    def close(self) -> None:
        # mpe2's close() calls pygame.quit(), a process-wide side effect that would also hit the other envs of
        # this process; nothing is rendered here, so dropping the reference frees everything.
        self._penv = None
        super().close()
