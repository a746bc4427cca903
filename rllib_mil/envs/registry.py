"""Team-env registry: ids such as ``mpe/simple_spread`` -> creator(env_config) -> :class:`TeamEnv`.

``register_with_ray()`` makes every id usable as ``config.environment("mpe/simple_spread", env_config={...})``
(RLlib looks the string up in Tune's registry before trying ``gymnasium.make``).
"""
from __future__ import annotations

from typing import Callable

from rllib_mil.envs.base import TeamEnv
from rllib_mil.envs.mpe import MPE_TASKS, MPETeamEnv
from rllib_mil.envs.smacv2 import SMACV2_ENV_IDS, SMACv2TeamEnv
from rllib_mil.envs.smax import SMAX_ENV_IDS, SMAXTeamEnv

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


def _ray_creator(env_id: str) -> Callable:
    def create(cfg=None):
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
# SMACv2 ids: their creator fails at once without StarCraft II, naming SC2PATH and the SMAX stand-in.
for _env_id in SMACV2_ENV_IDS:
    register_team_env(_env_id, team_env_creator(SMACv2TeamEnv, _env_id))
del _env_id
