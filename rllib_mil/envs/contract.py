"""The team view of a cooperative environment (see DESIGN.md, "The team view").

Every cooperative environment is wrapped as one ``gymnasium.Env`` whose

* observation is a ``Dict`` with
  - ``OBS``          float32 ``(n_agents, obs_dim)``  each agent's local observation (padded with zeros),
  - ``STATE``        float32 ``(state_dim,)``         the global state (only mixers / critics read it),
  - ``ACTION_MASK``  float32 ``(n_agents, n_actions)`` 1.0 = available, 0.0 = not (padding, dead agents);
* action is ``MultiDiscrete([n_actions] * n_agents)``;
* reward is the team reward (mean of the agents' rewards for MPE);
* ``info`` carries ``INFO_AGENT_REWARDS`` (float32 ``(n_agents,)``) and, where the game has one,
  ``INFO_BATTLE_WON`` (bool).

These names are the only place the keys are spelled; import them, never retype the strings.
"""

OBS = "obs"
STATE = "state"
ACTION_MASK = "action_mask"

INFO_AGENT_REWARDS = "agent_rewards"
INFO_BATTLE_WON = "battle_won"


class EnvUnavailable(RuntimeError):
    """The env's game or package is not installed on this machine (as opposed to a bad ``env_config``); the message
    says how to install it and what to use instead."""


def team_dims(observation_space, who: str = "This module") -> tuple[int, int, int, int]:
    """(n_agents, obs_dim, state_dim, n_actions) of a team observation space; a clear error for anything else."""
    try:
        n_agents, obs_dim = observation_space[OBS].shape
        (state_dim,) = observation_space[STATE].shape
        n_actions = observation_space[ACTION_MASK].shape[-1]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{who} needs a team environment (Dict observation with keys {OBS!r} (n_agents, obs_dim), "
            f"{STATE!r} (state_dim,), {ACTION_MASK!r} (n_agents, n_actions)); got {observation_space}. "
            "Use one of the registered team envs (rllib_mil.envs.list_team_envs()) or wrap yours as a TeamEnv."
        ) from e
    return int(n_agents), int(obs_dim), int(state_dim), int(n_actions)
