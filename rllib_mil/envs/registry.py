"""Team-env registry: ids such as ``mpe/simple_spread`` -> creator(env_config) -> :class:`TeamEnv`.

``register_with_ray()`` makes every id usable as ``config.environment("mpe/simple_spread", env_config={...})``
(RLlib looks the string up in Tune's registry before trying ``gymnasium.make``).
"""
from __future__ import annotations

import functools
from typing import Callable

from rllib_mil.envs.base import TeamEnv
from rllib_mil.envs.mpe import MPE_TASKS, MPETeamEnv
from rllib_mil.envs.overcooked import OVERCOOKED_ENV_IDS, OvercookedTeamEnv
from rllib_mil.envs.smacv2 import SMACV2_ENV_IDS, SMACv2TeamEnv
from rllib_mil.envs.smax import SMAX_ENV_IDS, SMAXTeamEnv


def make_smax_vector_env(env_id: str, env_config: dict, num_envs: int):
    from rllib_mil.envs.smax_vector import SMAXVectorTeamEnv

    return SMAXVectorTeamEnv(env_id, env_config, num_envs)

TeamEnvCreator = Callable[[dict | None], TeamEnv]

_REGISTRY: dict[str, TeamEnvCreator] = {}


def register_team_env(env_id: str, creator: TeamEnvCreator) -> None:
    """Register (or replace) ``creator(env_config) -> TeamEnv`` under ``env_id``."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    if not callable(creator):
        raise TypeError(f"creator for {env_id!r} must be callable, got {creator!r}")
    _REGISTRY[env_id] = creator


def list_team_envs() -> list[str]:
    """All registered team-env ids, sorted."""
    return sorted(_REGISTRY)


def make_team_env(env_id: str, env_config: dict | None = None) -> TeamEnv:
    """Build the team env ``env_id``. ``env_config`` may be a dict or an RLlib ``EnvContext``."""
    try:
        creator = _REGISTRY[env_id]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown team env id {env_id!r}; known ids: {list_team_envs()}") from None
    env = creator(env_config if env_config is not None else {})
    if not isinstance(env, TeamEnv):
        raise TypeError(f"creator registered for {env_id!r} returned {type(env).__name__}, not a TeamEnv")
    return env


def team_env_creator(env_cls: type, env_id: str) -> TeamEnvCreator:
    """``creator(env_config) -> env_cls(env_id, env_config)``, for the wrappers whose constructor takes the id."""

    def creator(env_config: dict | None = None) -> TeamEnv:
        return env_cls(env_id, env_config)

    creator.__name__ = f"make_{env_id.replace('/', '_')}"
    return creator


# env id -> creator(env_config, num_envs) -> gymnasium VectorEnv, for envs with their own batched stepping.
_VECTOR_REGISTRY: dict[str, Callable] = {}


def register_team_vector_env(env_id: str, creator: Callable) -> None:
    """Register ``creator(env_config, num_envs) -> gymnasium.vector.VectorEnv`` for ``env_id`` (a batched backend
    equivalent to a ``SyncVectorEnv`` of its single envs, see smax_vector.py)."""
    if env_id not in _REGISTRY:
        raise ValueError(f"register the single team env {env_id!r} first")
    _VECTOR_REGISTRY[env_id] = creator


def make_team_vector_env(env_id: str, env_config: dict | None, num_envs: int):
    """``num_envs`` copies of ``env_id`` as one gymnasium VectorEnv: the env's own batched backend where it has one
    (SMAX), else a ``SyncVectorEnv`` of single team envs."""
    import gymnasium as gym

    cfg = dict(env_config or {})
    if env_id in _VECTOR_REGISTRY:
        return _VECTOR_REGISTRY[env_id](cfg, int(num_envs))
    return gym.vector.SyncVectorEnv([lambda: make_team_env(env_id, cfg) for _ in range(int(num_envs))])


def _ray_creator(env_id: str) -> Callable:
    def create(cfg=None):
        # RLlib's gym_env_vectorize_mode="vector_entry_point" passes env_config | {"num_envs": N}.
        if isinstance(cfg, dict) and "num_envs" in cfg:
            cfg = dict(cfg)
            return make_team_vector_env(env_id, cfg, cfg.pop("num_envs"))
        return make_team_env(env_id, cfg)

    create.__name__ = f"create_{env_id.replace('/', '_')}"
    return create


def register_with_ray() -> list[str]:
    """Register every team-env id with ``ray.tune.registry.register_env`` (idempotent); returns the ids."""
    from ray.tune.registry import register_env

    ids = list_team_envs()
    for env_id in ids:
        register_env(env_id, _ray_creator(env_id))
    return ids


for _env_id in MPE_TASKS:
    register_team_env(_env_id, team_env_creator(MPETeamEnv, _env_id))
# SMAX ids are always registered; their creator imports JaxMARL (the `smax` extra) and says how to install it.
for _env_id in SMAX_ENV_IDS:
    register_team_env(_env_id, team_env_creator(SMAXTeamEnv, _env_id))
    register_team_vector_env(_env_id, functools.partial(make_smax_vector_env, _env_id))
# Overcooked ids likewise (JaxMARL, installed by the `smax` extra).
for _env_id in OVERCOOKED_ENV_IDS:
    register_team_env(_env_id, team_env_creator(OvercookedTeamEnv, _env_id))
# SMACv2 ids: their creator fails at once without StarCraft II, naming SC2PATH and the SMAX stand-in.
for _env_id in SMACV2_ENV_IDS:
    register_team_env(_env_id, team_env_creator(SMACv2TeamEnv, _env_id))
del _env_id
