"""SMACv2 (oxwhirl ``smacv2`` + StarCraft II) as team environments: ``smacv2/<race>_<n>_vs_<n>``.

The paper's six tasks (mifq-paper.txt §5.1.1): ``smacv2/{protoss,terran,zerg}_{5_vs_5,10_vs_10}``, each
``StarCraftCapabilityEnvWrapper`` with the capability config of smacv2's ``examples/configs/sc2_gen_<race>.yaml``
(weighted random teams, surrounded-and-reflect start positions on the 32x32 ``10gen_<race>`` map) and the env
arguments of that file that differ from ``StarCraft2Env``'s defaults (``conic_fov=False``, ``use_unit_ranges``,
``min_attack_range=2``, ``obs_own_pos``).

StarCraft II runs on the cluster image only (cluster/). Building one of these envs here fails at once with one
message naming ``SC2PATH``, the install step and the SMAX stand-in (``smax/smacv2_5_units``).

The team view (contract.py):

* ``OBS`` (n_agents, obs_shape) from ``get_obs()``; a dead agent's row is zeros and its mask allows only action 0
  (SMAC's no-op), whatever the backend reports.
* ``STATE`` from ``get_state()``; ``ACTION_MASK`` from ``get_avail_actions()``.
* reward: SMAC's (scaled) team reward, the same for every agent.
* ``terminated`` when the battle ends; ``truncated`` when it reaches the map's episode limit with both teams alive
  (smacv2 reports both as ``terminated``; SMAC's ``episode_limit`` is a time limit, so learners bootstrap through
  it). ``info[INFO_BATTLE_WON]`` from smacv2's ``battle_won``; ``dead_allies`` / ``dead_enemies`` passed on.
* ``reset()``'s info carries ``sc2_build`` (the StarCraft II version the game reports).

Watchdog: each env runs its smacv2 backend (and so its one StarCraft II process) in a child process of its own
session, started at the first ``reset()`` (constructing the env starts nothing, so a driver that only builds envs
for their spaces never launches StarCraft II). A ``reset`` slower than ``reset_timeout_s`` or a ``step`` slower than
``step_timeout_s``, or a child that dies, gets the whole process group killed (StarCraft II included) and a fresh
child: a failed step ends the episode as truncated with ``info["sc2_restart"]`` naming the cause, a failed reset is
retried. ``max_restarts`` failures in a row raise a RuntimeError with the last cause.

``backend`` (env_config) names the callable that builds the smacv2 env, ``"module:callable"``, default smacv2's
``StarCraftCapabilityEnvWrapper``; it receives the keyword arguments below. tests/smacv2_fake.py is the
contract fake the tests pass there.
"""
from __future__ import annotations

import copy
import importlib
import numbers
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rllib_mil.envs.base import TeamEnv, TeamStep
from rllib_mil.envs.contract import INFO_BATTLE_WON, EnvUnavailable
from rllib_mil.envs.mpe import _int_at_least, resolve_config
from rllib_mil.envs.sc2_worker import load_backend

DEFAULT_BACKEND = "smacv2.env.starcraft2.wrapper:StarCraftCapabilityEnvWrapper"
NO_OP_ACTION = 0  # SMAC: 0 no-op (dead agents only), 1 stop, 2-5 move, 6+ attack / heal
INFO_SC2_RESTART = "sc2_restart"
INFO_SC2_BUILD = "sc2_build"

# Team generation of smacv2/examples/configs/sc2_gen_<race>.yaml: unit types, weights, exception types.
RACE_TEAMS = {
    "protoss": (["stalker", "zealot", "colossus"], [0.45, 0.45, 0.1], []),
    "terran": (["marine", "marauder", "medivac"], [0.45, 0.45, 0.1], ["medivac"]),
    "zerg": (["zergling", "baneling", "hydralisk"], [0.45, 0.1, 0.45], ["baneling"]),
}
SIZES = {"5_vs_5": (5, 5), "10_vs_10": (10, 10)}
SMACV2_ENV_IDS = tuple(f"smacv2/{race}_{size}" for race in RACE_TEAMS for size in SIZES)


def _positive(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) > 0:
        raise ValueError(f"env_config[{key!r}] must be a number > 0 (seconds), got {value!r}")
    return float(value)


def _backend_path(key: str, value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"env_config[{key!r}] must be 'module:callable', got {value!r}")
    return value


def _optional_str(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"env_config[{key!r}] must be a string or null, got {value!r}")
    return value


SMACV2_CONFIG: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "step_timeout_s": (60.0, _positive),
    "reset_timeout_s": (300.0, _positive),
    "max_restarts": (3, _int_at_least(1)),
    "seed": (None, lambda k, v: None if v is None else _int_at_least(0)(k, v)),
    "game_version": (None, _optional_str),
    "backend": (DEFAULT_BACKEND, _backend_path),
}


def backend_kwargs(env_id: str, config: dict) -> dict:
    """Keyword arguments of ``StarCraftCapabilityEnvWrapper`` for one task (sc2_gen_<race>.yaml)."""
    race, _, size = env_id.split("/", 1)[1].partition("_")
    n_units, n_enemies = SIZES[size]
    unit_types, weights, exceptions = RACE_TEAMS[race]
    team_gen = {"dist_type": "weighted_teams", "unit_types": list(unit_types), "weights": list(weights),
                "observe": True}
    if exceptions:
        team_gen["exception_unit_types"] = list(exceptions)
    kwargs = {
        "capability_config": {
            "n_units": n_units,
            "n_enemies": n_enemies,
            "team_gen": team_gen,
            "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32},
        },
        "map_name": f"10gen_{race}",
        "conic_fov": False,
        "use_unit_ranges": True,
        "min_attack_range": 2,
        "obs_own_pos": True,
        "obs_last_action": False,
        "state_last_action": True,
        "game_version": config["game_version"],
    }
    if config["seed"] is not None:
        kwargs["seed"] = config["seed"]
    return kwargs


def sc2_path() -> Path:
    """Where pysc2 looks for StarCraft II on Linux: ``$SC2PATH``, else ``~/StarCraftII``."""
    return Path(os.environ.get("SC2PATH", "~/StarCraftII")).expanduser()


def check_starcraft_installed(env_id: str, map_name: str) -> None:
    """Raise one RuntimeError naming what is missing (smacv2, the SC2 binary, the SMAC maps) and the way out."""
    alt = "smax/smacv2_10_units" if "10_vs_10" in env_id else "smax/smacv2_5_units"
    fix = (
        f"{env_id} needs oxwhirl's smacv2 and StarCraft II 4.10: build the cluster image (cluster/Dockerfile: "
        "`pip install -e .[smacv2]` plus the SC2 Linux package and the SMAC maps under $SC2PATH/Maps/SMAC_Maps, "
        "see cluster/README.md) or, on a machine without StarCraft II, use the SMAX stand-in "
        f"`env: {alt}` (pip install -e .[smax])."
    )
    try:
        importlib.import_module("smacv2")
    except ImportError:
        raise EnvUnavailable(f"StarCraft II environment unavailable: the `smacv2` package is not installed. {fix}") from None
    root = sc2_path()
    if not (root / "Versions").is_dir():
        raise EnvUnavailable(
            f"StarCraft II not found: SC2PATH={os.environ.get('SC2PATH', '(unset)')} -> {root} has no Versions/ "
            f"folder. Set SC2PATH to the StarCraft II install. {fix}"
        )
    map_file = root / "Maps" / "SMAC_Maps" / f"{map_name}.SC2Map"
    if not map_file.is_file():
        raise EnvUnavailable(f"StarCraft II map {map_file} is missing (copy smacv2's SMAC_Maps there). {fix}")


class _Watchdog:
    """A smacv2 backend in a child process with time-outs; kills the child's process group on a hang or crash.

    The child is a fresh interpreter running ``sc2_worker.py`` (stdlib and numpy only, so it starts in a fraction of
    a second) in a session of its own, talking over
    a socket pair: no fork of a process that runs Ray, torch or JAX threads, no re-import of the user's
    ``__main__`` (as multiprocessing's spawn would do), and one ``killpg`` takes StarCraft II down with it.
    """

    def __init__(self, backend: str, kwargs: dict):
        self.backend, self.kwargs = backend, kwargs
        self.proc = None
        self.conn = None

    def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # same imports as here (as spawn does)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sc2_worker.py")), str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            start_new_session=True,
            env=env,
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send((self.backend, self.kwargs))

    def call(self, cmd: str, arg, timeout: float):
        """The child's answer; raises TimeoutError (hang), ConnectionError (crash) or RuntimeError (error)."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self.start()
        try:
            self.conn.send((cmd, arg))
            answered = self.conn.poll(timeout)
            status, payload = self.conn.recv() if answered else (None, None)
        except (EOFError, OSError) as e:
            code = self.proc.poll() if self.proc is not None else None
            raise ConnectionError(f"the StarCraft II worker died during {cmd} (exit code {code}): {e!r}") from None
        if not answered:
            raise TimeoutError(f"{cmd} took longer than {timeout:g} s")
        if status != "ok":
            raise RuntimeError(f"smacv2 {cmd} failed in the StarCraft II worker:\n{payload}")
        return payload

    def kill(self) -> None:
        """Kill the child's whole process group (the child and its StarCraft II)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives a child that already exited
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn = None, None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.call("close", None, timeout=30)
            except (TimeoutError, ConnectionError, RuntimeError, OSError):
                pass
        self.kill()


class SMACv2TeamEnv(TeamEnv):
    """One SMACv2 task seen as one team, its backend behind a watchdog (see the module docstring)."""

    def __init__(self, env_id: str, env_config: dict | None = None) -> None:
        if env_id not in SMACV2_ENV_IDS:
            raise ValueError(f"Unknown SMACv2 task {env_id!r}; known ids: {list(SMACV2_ENV_IDS)}")
        config = resolve_config(env_id, env_config, SMACV2_CONFIG)
        kwargs = backend_kwargs(env_id, config)
        if config["backend"] == DEFAULT_BACKEND:
            check_starcraft_installed(env_id, kwargs["map_name"])
        # Spaces from the backend's env_info: building a smacv2 env does not launch StarCraft II.
        # (a deep copy: smacv2's wrapper writes into the capability config it is given)
        probe = load_backend(config["backend"])(**copy.deepcopy(kwargs))
        try:
            info = probe.get_env_info()
        finally:
            probe.close()
        n = int(info["n_agents"])
        self.episode_limit = int(info["episode_limit"])
        self.n_enemies = int(kwargs["capability_config"]["n_enemies"])
        super().__init__(
            env_id=env_id,
            env_config=config,
            agent_names=[f"agent_{i}" for i in range(n)],
            obs_dim=int(info["obs_shape"]),
            state_dim=int(info["state_shape"]),
            n_actions=int(info["n_actions"]),
        )
        self._watchdog = _Watchdog(config["backend"], kwargs)
        self._last = None  # (obs, state, mask) of the latest observation
        self._t = 0
        self.restarts = 0

    # ------------------------------------------------------------------------------------------- helpers
    def _team_view(self, obs, state, avail):
        obs = np.array(obs, dtype=np.float32).reshape(self.n_agents, self.obs_dim)
        mask = np.array(avail, dtype=np.float32).reshape(self.n_agents, self.n_actions)
        # SMAC offers a dead agent the no-op only; an agent with nothing else available is treated as dead.
        dead = np.delete(mask, NO_OP_ACTION, axis=1).sum(axis=1) == 0
        obs[dead] = 0.0
        mask[dead] = 0.0
        mask[dead, NO_OP_ACTION] = 1.0
        self._last = (obs, np.asarray(state, dtype=np.float32), mask)
        return self._last

    def _restart(self, cause: Exception) -> str:
        self.restarts += 1
        self._watchdog.kill()
        return f"{type(cause).__name__}: {cause}"

    # ---------------------------------------------------------------------------------------------- hooks
    def _reset_team(self, rng: np.random.Generator, options):
        cfg = self.env_config
        failures = []
        while len(failures) < cfg["max_restarts"]:
            try:
                obs, state, avail, build = self._watchdog.call("reset", None, cfg["reset_timeout_s"])
                break
            except (TimeoutError, ConnectionError, RuntimeError) as e:
                failures.append(self._restart(e))
        else:
            raise RuntimeError(
                f"{self.env_id}: reset failed {len(failures)} times in a row (StarCraft II restarted each time); "
                f"last cause: {failures[-1]}"
            )
        self._t = 0
        info = {INFO_SC2_BUILD: build}
        if failures:
            info[INFO_SC2_RESTART] = failures[-1]
        return (*self._team_view(obs, state, avail), info)

    def _step_team(self, actions: np.ndarray) -> TeamStep:
        try:
            reward, terminated, info, obs, state, avail = self._watchdog.call(
                "step", actions.tolist(), self.env_config["step_timeout_s"]
            )
        except (TimeoutError, ConnectionError, RuntimeError) as e:
            # The game is gone: end the episode here (truncated, no reward); the next reset starts a fresh one.
            cause = self._restart(e)
            obs, state, mask = self._last
            return TeamStep(obs=obs, state=state, action_mask=mask, agent_rewards=np.zeros(self.n_agents),
                            terminated=False, truncated=True, info={INFO_SC2_RESTART: cause, INFO_BATTLE_WON: False})
        self._t += 1
        won = bool(info.get(INFO_BATTLE_WON, False))
        dead_a, dead_e = int(info.get("dead_allies", 0)), int(info.get("dead_enemies", 0))
        wiped_out = dead_a >= self.n_agents or dead_e >= self.n_enemies
        time_out = terminated and not won and not wiped_out and self._t >= self.episode_limit
        out = {INFO_BATTLE_WON: won, "dead_allies": dead_a, "dead_enemies": dead_e}
        return TeamStep(
            *self._team_view(obs, state, avail),
            agent_rewards=np.full(self.n_agents, reward),
            terminated=bool(terminated) and not time_out,
            truncated=bool(time_out),
            info=out,
        )

    def close(self) -> None:
        self._watchdog.close()
        super().close()

    def __del__(self):
        try:
            self._watchdog.kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
