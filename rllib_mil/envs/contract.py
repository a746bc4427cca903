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
