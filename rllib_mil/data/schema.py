"""Demonstration file format (Parquet, one row per team step). Version ``SCHEMA_VERSION``.

Array columns are stored flattened as ``list<float32>`` / ``list<int64>``; their shapes come from the
metadata (``n_agents``, ``obs_dim``, ``state_dim``, ``n_actions``):

==================== ===================== =====================================
column               arrow type            shape per row
==================== ===================== =====================================
``episode_id``       int64                 scalar (0 .. episodes-1)
``t``                int64                 scalar (step index in the episode)
``obs``              list<float32>         (n_agents, obs_dim)
``state``            list<float32>         (state_dim,)
``action_mask``      list<float32>         (n_agents, n_actions)
``actions``          list<int64>           (n_agents,)
``reward``           float32               scalar team reward
``agent_rewards``    list<float32>         (n_agents,)
``next_obs``         list<float32>         (n_agents, obs_dim)
``next_state``       list<float32>         (state_dim,)
``next_action_mask`` list<float32>         (n_agents, n_actions)
``terminated``       bool                  scalar
``truncated``        bool                  scalar
==================== ===================== =====================================

Metadata: Parquet key-value pairs, every value JSON-encoded, keys below (``META_*``).
"""
from rllib_mil.envs.contract import ACTION_MASK as _ACTION_MASK
from rllib_mil.envs.contract import OBS as _OBS
from rllib_mil.envs.contract import STATE as _STATE

SCHEMA_VERSION = 1

# ---- columns
EPISODE_ID = "episode_id"
T = "t"
OBS = _OBS
STATE = _STATE
ACTION_MASK = _ACTION_MASK
ACTIONS = "actions"
REWARD = "reward"
AGENT_REWARDS = "agent_rewards"
NEXT_OBS = "next_" + _OBS
NEXT_STATE = "next_" + _STATE
NEXT_ACTION_MASK = "next_" + _ACTION_MASK
TERMINATED = "terminated"
TRUNCATED = "truncated"

COLUMNS = (
    EPISODE_ID, T, OBS, STATE, ACTION_MASK, ACTIONS, REWARD, AGENT_REWARDS,
    NEXT_OBS, NEXT_STATE, NEXT_ACTION_MASK, TERMINATED, TRUNCATED,
)
# Columns holding one flattened array per row -> (dtype, shape as names of metadata dims).
ARRAY_COLUMNS = {
    OBS: ("float32", ("n_agents", "obs_dim")),
    STATE: ("float32", ("state_dim",)),
    ACTION_MASK: ("float32", ("n_agents", "n_actions")),
    ACTIONS: ("int64", ("n_agents",)),
    AGENT_REWARDS: ("float32", ("n_agents",)),
    NEXT_OBS: ("float32", ("n_agents", "obs_dim")),
    NEXT_STATE: ("float32", ("state_dim",)),
    NEXT_ACTION_MASK: ("float32", ("n_agents", "n_actions")),
}
SCALAR_COLUMNS = {
    EPISODE_ID: "int64",
    T: "int64",
    REWARD: "float32",
    TERMINATED: "bool",
    TRUNCATED: "bool",
}

# ---- metadata keys (values are JSON)
META_SCHEMA_VERSION = "rllib_mil.schema_version"
META_ENV_ID = "rllib_mil.env_id"
META_ENV_CONFIG = "rllib_mil.env_config"
META_N_AGENTS = "rllib_mil.n_agents"
META_OBS_DIM = "rllib_mil.obs_dim"
META_STATE_DIM = "rllib_mil.state_dim"
META_N_ACTIONS = "rllib_mil.n_actions"
META_EXPERT = "rllib_mil.expert"
# How a checkpoint expert chose its actions: "greedy" or "stochastic" (optional: files before it lack it).
META_EXPERT_ACTIONS = "rllib_mil.expert_actions"
# Set on the nested subsets written by ``write_subsets``: the absolute path of the full collection (optional).
META_SUBSET_OF = "rllib_mil.subset_of"
META_EXPERT_MEAN_RETURN = "rllib_mil.expert_mean_return"
META_EXPERT_STD_RETURN = "rllib_mil.expert_std_return"
META_EXPERT_WIN_RATE = "rllib_mil.expert_win_rate"  # null where the game has no win
# Optional (files from before it lack it): uniform-random play's mean return on the first episodes' reset seeds;
# with the expert's it turns a return into an expert-normalized score (expert 1, random 0).
META_RANDOM_MEAN_RETURN = "rllib_mil.random_mean_return"
META_EPISODES = "rllib_mil.episodes"
META_SEED = "rllib_mil.seed"
META_PACKAGE_VERSION = "rllib_mil.package_version"

REQUIRED_METADATA = (
    META_SCHEMA_VERSION, META_ENV_ID, META_ENV_CONFIG, META_N_AGENTS, META_OBS_DIM, META_STATE_DIM,
    META_N_ACTIONS, META_EXPERT, META_EXPERT_MEAN_RETURN, META_EXPERT_STD_RETURN, META_EXPERT_WIN_RATE,
    META_EPISODES, META_SEED, META_PACKAGE_VERSION,
)
# Metadata dims by short name (the names used in ARRAY_COLUMNS shapes).
DIM_KEYS = {
    "n_agents": META_N_AGENTS,
    "obs_dim": META_OBS_DIM,
    "state_dim": META_STATE_DIM,
    "n_actions": META_N_ACTIONS,
}
