"""Overcooked (JaxMARL's original ``Overcooked``) as general-sum team environments: ``overcooked/<layout>``.

Two cooks share a kitchen: fetch three onions into a pot, wait for the soup to cook (20 steps), take a plate to the
pot, pick the soup up and deliver it at the serving counter. It needs JaxMARL only, which the ``smax`` extra
already installs: ``pip install -e .[smax]``.

================================= ========= =========== =============
env id                            H x W     obs_dim     state_dim
================================= ========= =========== =============
``overcooked/cramped_room``       4 x 5     520         521
``overcooked/asymm_advantages``   5 x 9     1170        1171
``overcooked/coord_ring``         5 x 5     650         651
``overcooked/forced_coord``       5 x 5     650         651
``overcooked/counter_circuit``    5 x 8     1040        1041
================================= ========= =========== =============

env_config keys (defaults): ``max_steps`` (400, JaxMARL's episode length), ``shaped_reward_coef`` (1.0, the
weight of each agent's own shaped reward, see below; 0 gives the sparse shared delivery reward only),
``random_reset`` (False: only the cooks' orientations are random at reset; True: JaxMARL's fully random start,
with random positions, inventories and pot states).

The team view (contract.py):

* ``OBS`` (2, H * W * 26): each cook's JaxMARL observation, the whole kitchen as 26 feature planes (own position,
  partner's position, both orientations, pots, counters, onion / plate piles, serving counter, onions in pot,
  onions in soup, cooking time left (19..1), soup ready, loose plates / onions, urgency), flattened in JaxMARL's
  (H, W, 26) order, as float32 and unscaled (the planes are 0/1 except the onion counts (0..3) and the cooking
  timer). A cook sees its own planes first, so the two rows differ only by that swap.
* ``STATE``: agent 0's observation row (Overcooked is fully observable: it already holds everything either cook
  sees, so concatenating both rows would only repeat it) followed by the elapsed fraction ``t / max_steps``.
* ``ACTION_MASK`` (2, 6): all ones. Actions: 0 up (-y), 1 down (+y), 2 right (+x), 3 left (-x), 4 stay,
  5 interact (with the cell the cook faces). Moving into a counter does not move the cook; it turns it to face it.
* rewards, general-sum (what MAMQL needs): agent i's reward is the shared delivery reward (20 per soup delivered by
  either cook, JaxMARL's ``reward``) plus ``shaped_reward_coef`` times its own shaped reward (JaxMARL's
  ``info["shaped_reward"][agent_i]``: 3 for putting an onion into a pot, 3 for a useful plate pickup, 5 for
  picking up a ready soup; nothing for fetching an onion). They travel in ``info[INFO_AGENT_REWARDS]``; the team
  reward is their mean (the delivery reward plus the coefficient times the mean shaped reward).
* never ``terminated``; ``truncated`` at ``max_steps`` (JaxMARL's only episode end).
* ``info[INFO_SOUPS_DELIVERED]`` on every step: the soups delivered so far in the episode (at the last step, the
  episode's total).

Reset and step are one jitted JAX function each, compiled once per process, layout and (``max_steps``,
``random_reset``) and shared by every env instance (1-4 s on first use); a step costs about 0.5 ms on one CPU
core. ``shaped_reward_coef`` is applied outside the compiled functions, so changing it recompiles nothing.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

from rllib_mil.envs.base import TeamStep
from rllib_mil.envs.jax_env import JaxTeamEnv, import_jaxmarl
from rllib_mil.envs.mpe import _int_at_least, resolve_config
from rllib_mil.envs.smax import _bool, _non_negative

# The layouts of jaxmarl.environments.overcooked.layouts.overcooked_layouts.
OVERCOOKED_LAYOUTS = ("cramped_room", "asymm_advantages", "coord_ring", "forced_coord", "counter_circuit")
OVERCOOKED_ENV_IDS = tuple(f"overcooked/{name}" for name in OVERCOOKED_LAYOUTS)

# Actions (JaxMARL's OvercookedActions without the unused "done").
UP, DOWN, RIGHT, LEFT, STAY, INTERACT = range(6)
N_ACTIONS = 6
N_CHANNELS = 26  # feature planes of an observation (Overcooked.get_obs)
DELIVERY_REWARD = 20.0  # JaxMARL's reward per soup delivered

# Episode total of soups delivered so far (Overcooked only, so it is spelled here rather than in contract.py).
INFO_SOUPS_DELIVERED = "soups_delivered"

OVERCOOKED_CONFIG = {
    "max_steps": (400, _int_at_least(1)),
    "shaped_reward_coef": (1.0, _non_negative),
    "random_reset": (False, _bool),
}


def import_jaxmarl_overcooked():
    """``jaxmarl.environments.overcooked``, or an ImportError that says how to install it."""
    return import_jaxmarl("overcooked", "overcooked/...")


@functools.lru_cache(maxsize=None)
def _compiled(layout: str, max_steps: int, random_reset: bool):
    """(jaxmarl env, jitted reset(key), jitted step(key, state, actions)) for one layout and configuration.

    Cached per process: every team env of the same configuration shares the compiled functions.
    """
    overcooked = import_jaxmarl_overcooked()
    import jax
    import jax.numpy as jnp

    with warnings.catch_warnings():  # JaxMARL recommends OvercookedV2 on every construction
        warnings.simplefilter("ignore", DeprecationWarning)
        env = overcooked.Overcooked(
            layout=overcooked.overcooked_layouts[layout], random_reset=random_reset, max_steps=max_steps
        )

    def team_view(st):
        """(obs (2, H*W*26), state (H*W*26 + 1,)) of an Overcooked state."""
        obs_d = env.get_obs(st)
        obs = jnp.stack([obs_d[a].reshape(-1) for a in env.agents]).astype(jnp.float32)
        t = (st.step / max_steps).astype(jnp.float32)[None]
        return obs, jnp.concatenate([obs[0], t])

    def reset(key):
        _, st = env.reset(key)
        return (st, *team_view(st))

    def step(key, st, actions):
        key, step_key = jax.random.split(key)
        _, st, rewards, _, info = env.step_env(step_key, st, {a: actions[i] for i, a in enumerate(env.agents)})
        obs, state = team_view(st)
        shaped = jnp.stack([info["shaped_reward"][a] for a in env.agents]).astype(jnp.float32)
        truncated = st.step >= max_steps
        return key, st, obs, state, rewards[env.agents[0]], shaped, truncated  # the delivery reward is shared

    return env, jax.jit(reset), jax.jit(step)


class OvercookedTeamEnv(JaxTeamEnv):
    """One Overcooked layout, both cooks seen as one team with per-agent (general-sum) rewards."""

    def __init__(self, env_id: str, env_config: dict | None = None) -> None:
        layout = env_id.split("/", 1)[1] if env_id.startswith("overcooked/") else None
        if layout not in OVERCOOKED_LAYOUTS:
            raise ValueError(f"Unknown Overcooked layout in {env_id!r}; known ids: {list(OVERCOOKED_ENV_IDS)}")
        config = resolve_config(env_id, env_config, OVERCOOKED_CONFIG)
        self._env, reset_fn, step_fn = _compiled(layout, config["max_steps"], config["random_reset"])
        self.layout, self.height, self.width = layout, int(self._env.height), int(self._env.width)
        self.max_steps, self.shaped_reward_coef = config["max_steps"], config["shaped_reward_coef"]
        obs_dim = self.height * self.width * N_CHANNELS
        super().__init__(
            env_id=env_id,
            env_config=config,
            agent_names=list(self._env.agents),
            obs_dim=obs_dim,
            state_dim=obs_dim + 1,
            n_actions=N_ACTIONS,
        )
        self._set_game(reset_fn, step_fn)
        self._soups = 0

    def _reset_team(self, rng: np.random.Generator, options):
        obs, state = self._game_reset(rng)
        self._soups = 0
        return obs, state, self.static_mask, {}

    def _step_team(self, actions: np.ndarray) -> TeamStep:
        obs, state, reward, shaped, truncated = self._game_step(actions)
        self._soups += int(round(float(reward) / DELIVERY_REWARD))
        return TeamStep(
            obs=obs,
            state=state,
            action_mask=self.static_mask,
            agent_rewards=float(reward) + self.shaped_reward_coef * shaped.astype(np.float64),
            terminated=False,
            truncated=bool(truncated),
            info={INFO_SOUPS_DELIVERED: self._soups},
        )

