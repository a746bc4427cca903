"""SMAX (JaxMARL's StarCraft-like simulator, ``HeuristicEnemySMAX``) as team environments: ``smax/<map>``.

SMAX runs anywhere (no StarCraft II): the allies are the learning team, the enemies follow JaxMARL's heuristic
(attack the closest unit in range, otherwise walk towards the enemy). Install with ``pip install -e .[smax]``.

===================== ======= ======= ====================================================================
env id                allies  enemies units
===================== ======= ======= ====================================================================
``smax/3m``           3       3       marines
``smax/8m``           8       8       marines
``smax/25m``          25      25      marines
``smax/5m_vs_6m``     5       6       marines
``smax/10m_vs_11m``   10      11      marines
``smax/27m_vs_30m``   27      30      marines
``smax/2s3z``         5       5       2 stalkers, 3 zealots each
``smax/3s5z``         8       8       3 stalkers, 5 zealots each
``smax/3s5z_vs_3s6z`` 8       9       stalkers and zealots
``smax/3s_vs_5z``     3       5       3 stalkers against 5 zealots
``smax/6h_vs_8z``     6       8       hydralisks against zealots
``smax/smacv2_5_units``  5    5       SMACv2-style: random unit types, surrounded / reflected start positions
``smax/smacv2_10_units`` 10   10      "
``smax/smacv2_20_units`` 20   20      "
===================== ======= ======= ====================================================================

env_config keys (defaults): ``max_steps`` (100, the episode limit), ``enemy_shoots`` (True), ``attack_mode``
("closest" | "random", the enemy heuristic's targeting), ``see_enemy_actions`` (True), ``walls_cause_death``
(True), ``won_battle_bonus`` (1.0), ``sight_range`` (None = SMAX's per-unit-type ranges; a number sets every unit
type's sight range, 0 = each agent sees only its own features), ``observation_type`` ("unit_list" | "conic").

The team view (contract.py):

* ``OBS`` (n_allies, obs_dim): SMAX's per-unit observation (other allies, then enemies, then own features; units
  out of sight or dead are zeros). A dead ally's row is all zeros.
* ``STATE``: every unit's own features (health fraction, position / map size, weapon cooldown fraction, unit-type
  one-hot; zeros when dead), allies first, then the episode's elapsed fraction ``t / max_steps``. SMAX's own
  ``world_state`` carries raw positions (0..32) and type indices; this one is normalised like the observations.
* ``ACTION_MASK`` (n_allies, 5 + n_enemies): 0-3 move (+y, +x, −y, −x), 4 stop, 5 + j attack enemy j (available
  when j is alive and in attack range). A dead ally has only action 4 (its no-op).
* reward: SMAX's team reward (damage dealt as a fraction of the enemies' health, divided by their number, plus
  ``won_battle_bonus`` on a win), the same for every ally, so the team reward equals it.
* ``terminated`` when one side is wiped out; ``truncated`` at ``max_steps`` (SMAX itself calls both "done"; the
  time limit is a truncation, as SMAC's ``episode_limit``, so learners bootstrap through it).
* ``info[INFO_BATTLE_WON]`` on every step: True only on the final step of a won battle. SMAX has no such info key:
  it is derived from the final state exactly as SMAX awards its win bonus (every enemy dead and at least one ally
  alive; both sides dying in the same step is a draw, not a win). ``info["dead_allies"]``, ``info["dead_enemies"]``.

Reset and step are one jitted JAX function each, compiled once per process and configuration and shared by every
env instance in it (a few seconds on first use); a live step costs about 0.3 ms on one CPU core. For many battles
per env runner, ``smax_vector.SMAXVectorTeamEnv`` steps them all in one vmapped call (RLlib uses it with
``gym_env_vectorize_mode="vector_entry_point"``).
"""
from __future__ import annotations

import functools
import numbers
from typing import Any, Callable

import numpy as np

from rllib_mil.envs.base import TeamStep
from rllib_mil.envs.jax_env import JaxTeamEnv, import_jaxmarl
from rllib_mil.envs.contract import INFO_BATTLE_WON
from rllib_mil.envs.mpe import _int_at_least, resolve_config

# map name -> (allies, enemies); the maps of jaxmarl.environments.smax.smax_env.MAP_NAME_TO_SCENARIO.
SMAX_MAPS: dict[str, tuple[int, int]] = {
    "3m": (3, 3),
    "8m": (8, 8),
    "25m": (25, 25),
    "5m_vs_6m": (5, 6),
    "10m_vs_11m": (10, 11),
    "27m_vs_30m": (27, 30),
    "2s3z": (5, 5),
    "3s5z": (8, 8),
    "3s5z_vs_3s6z": (8, 9),
    "3s_vs_5z": (3, 5),
    "6h_vs_8z": (6, 8),
    "smacv2_5_units": (5, 5),
    "smacv2_10_units": (10, 10),
    "smacv2_20_units": (20, 20),
}
SMAX_ENV_IDS = tuple(f"smax/{m}" for m in SMAX_MAPS)

# Discrete action layout (SMAX): 4 moves, stop, then one attack action per enemy.
N_MOVE_ACTIONS = 4
STOP_ACTION = 4
FIRST_ATTACK_ACTION = 5
# Unit vectors of the move actions 0-3 (SMAX's _decode_discrete_actions).
MOVE_VECTORS = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])

# Feature layout of SMAX's "unit_list" observation (smax_env.py: unit_features, own_features).
UNIT_FEATURES = 13  # health, rel x, rel y (/ sight range), last move x, y, last target, cooldown, 6 type bits
OWN_FEATURES = 10  # health, x / width, y / height, cooldown, 6 type bits
MAP_SIZE = 32.0


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"env_config[{key!r}] must be true or false, got {value!r}")
    return bool(value)


def _one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"env_config[{key!r}] must be one of {list(choices)}, got {value!r}")
        return value

    return check


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) >= 0:
        raise ValueError(f"env_config[{key!r}] must be a number >= 0, got {value!r}")
    return float(value)


def _optional_non_negative(key: str, value: Any) -> float | None:
    return None if value is None else _non_negative(key, value)


SMAX_CONFIG: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "max_steps": (100, _int_at_least(1)),
    "enemy_shoots": (True, _bool),
    "attack_mode": ("closest", _one_of("closest", "random")),
    "see_enemy_actions": (True, _bool),
    "walls_cause_death": (True, _bool),
    "won_battle_bonus": (1.0, _non_negative),
    "sight_range": (None, _optional_non_negative),
    "observation_type": ("unit_list", _one_of("unit_list", "conic")),
}


def import_jaxmarl_smax():
    """``jaxmarl.environments.smax``, or an ImportError that says how to install it."""
    return import_jaxmarl("smax", "smax/...")


def _freeze(config: dict) -> tuple:
    return tuple(sorted(config.items()))


@functools.lru_cache(maxsize=None)
def _compiled(map_name: str, frozen_config: tuple):
    """(jaxmarl env, jitted reset(key), jitted step(key, state, actions)) for one map and configuration.

    Cached per process: every team env of the same configuration shares the compiled functions.
    """
    smax = import_jaxmarl_smax()
    import jax
    import jax.numpy as jnp

    config = dict(frozen_config)
    kwargs = dict(
        scenario=smax.map_name_to_scenario(map_name),
        max_steps=config["max_steps"],
        see_enemy_actions=config["see_enemy_actions"],
        walls_cause_death=config["walls_cause_death"],
        won_battle_bonus=config["won_battle_bonus"],
        observation_type=config["observation_type"],
    )
    if config["sight_range"] is not None:
        kwargs["unit_type_sight_ranges"] = jnp.full((6,), config["sight_range"], dtype=jnp.float32)
    env = smax.HeuristicEnemySMAX(
        enemy_shoots=config["enemy_shoots"], attack_mode=config["attack_mode"], **kwargs
    )
    inner = env._env  # the SMAX world (HeuristicEnemySMAX forwards attributes to it)
    allies, n_units = env.num_allies, inner.num_agents
    own_features = jax.vmap(inner._get_own_features, in_axes=(None, 0))

    def team_view(st):
        """(obs (n, d), state (s,), mask (n, A), alive (n_units,)) of a HeuristicEnemySMAX state."""
        world = st.state
        obs_d = env.get_obs(st)
        obs = jnp.stack([obs_d[a] for a in env.agents])  # (n, d)
        alive = world.unit_alive  # (n_units,)
        obs = obs * alive[:allies, None]  # a dead ally observes nothing
        avail = env.get_avail_actions(st)
        mask = jnp.stack([avail[a] for a in env.agents]).astype(jnp.float32)  # (n, 5 + n_enemies)
        units = own_features(world, jnp.arange(n_units)).reshape(-1)  # (n_units * 10,)
        t = (world.step / config["max_steps"]).astype(jnp.float32)[None]
        state = jnp.concatenate([units, t])
        return obs, state, mask, alive

    def reset(key):
        _, st = env.reset(key)
        # The enemy heuristic's initial `last_attacked_enemy` is a weakly typed int; after a step it is not.
        # Strong-typing it here keeps step() at one compilation.
        st = st.replace(enemy_policy_state=jax.tree.map(lambda x: x + jnp.zeros((), x.dtype), st.enemy_policy_state))
        return (st, *team_view(st))

    def step(key, st, actions):
        key, step_key = jax.random.split(key)
        _, st, rewards, _, _ = env.step_env(step_key, st, {a: actions[i] for i, a in enumerate(env.agents)})
        obs, state, mask, alive = team_view(st)
        reward = rewards[env.agents[0]]  # SMAX gives every ally the same team reward
        allies_dead = ~jnp.any(alive[:allies])
        enemies_dead = ~jnp.any(alive[allies:])
        terminated = allies_dead | enemies_dead
        truncated = (st.state.step >= config["max_steps"]) & ~terminated
        won = enemies_dead & ~allies_dead  # SMAX's win-bonus condition (a simultaneous wipe-out is a draw)
        dead = (jnp.sum(~alive[:allies]), jnp.sum(~alive[allies:]))
        return key, st, obs, state, mask, reward, terminated, truncated, won, dead

    return env, jax.jit(reset), jax.jit(step)


class SMAXTeamEnv(JaxTeamEnv):
    """One SMAX map (allies against JaxMARL's heuristic enemies) seen as one team."""

    def __init__(self, env_id: str, env_config: dict | None = None) -> None:
        map_name = env_id.split("/", 1)[1] if env_id.startswith("smax/") else None
        if map_name not in SMAX_MAPS:
            raise ValueError(f"Unknown SMAX map in {env_id!r}; known ids: {list(SMAX_ENV_IDS)}")
        config = resolve_config(env_id, env_config, SMAX_CONFIG)
        self._env, reset_fn, step_fn = _compiled(map_name, _freeze(config))
        allies, enemies = self._env.num_allies, self._env.num_enemies
        self.map_name, self.n_enemies, self.max_steps = map_name, enemies, config["max_steps"]
        super().__init__(
            env_id=env_id,
            env_config=config,
            agent_names=list(self._env.agents),
            obs_dim=int(self._env.obs_size),
            state_dim=(allies + enemies) * OWN_FEATURES + 1,
            n_actions=FIRST_ATTACK_ACTION + enemies,
        )
        self._set_game(reset_fn, step_fn)

    def _reset_team(self, rng: np.random.Generator, options):
        obs, state, mask, _ = self._game_reset(rng)
        return obs, state, mask, {}

    def _step_team(self, actions: np.ndarray) -> TeamStep:
        obs, state, mask, reward, terminated, truncated, won, dead = self._game_step(actions)
        return TeamStep(
            obs=obs,
            state=state,
            action_mask=mask,
            agent_rewards=np.full(self.n_agents, float(reward)),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info={
                INFO_BATTLE_WON: bool(won),
                "dead_allies": int(dead[0]),
                "dead_enemies": int(dead[1]),
            },
        )

