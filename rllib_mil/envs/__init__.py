"""Team environments: every cooperative game as one ``gymnasium.Env`` (see ``contract.py``)."""
from rllib_mil.envs.base import MaskedMultiDiscrete, TeamEnv, TeamStep
from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, INFO_BATTLE_WON, OBS, STATE
from rllib_mil.envs.mpe import MPE_TASKS, MPETeamEnv
from rllib_mil.envs.overcooked import INFO_SOUPS_DELIVERED, OVERCOOKED_ENV_IDS, OvercookedTeamEnv
from rllib_mil.envs.smacv2 import SMACV2_ENV_IDS, SMACv2TeamEnv
from rllib_mil.envs.smax import SMAX_ENV_IDS, SMAXTeamEnv
from rllib_mil.envs.registry import (
    list_team_envs,
    make_team_env,
    make_team_vector_env,
    register_team_env,
    register_team_vector_env,
    register_with_ray,
)

__all__ = [
    "ACTION_MASK",
    "INFO_AGENT_REWARDS",
    "INFO_BATTLE_WON",
    "INFO_SOUPS_DELIVERED",
    "MPE_TASKS",
    "MPETeamEnv",
    "MaskedMultiDiscrete",
    "OBS",
    "OVERCOOKED_ENV_IDS",
    "OvercookedTeamEnv",
    "SMACV2_ENV_IDS",
    "SMACv2TeamEnv",
    "SMAX_ENV_IDS",
    "SMAXTeamEnv",
    "STATE",
    "TeamEnv",
    "TeamStep",
    "list_team_envs",
    "make_team_env",
    "make_team_vector_env",
    "register_team_vector_env",
    "register_team_env",
    "register_with_ray",
]
