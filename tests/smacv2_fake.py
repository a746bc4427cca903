"""CONTRACT FAKE of smacv2's ``StarCraftCapabilityEnvWrapper`` (tests only: StarCraft II cannot run here).

It follows smacv2's documented API and conventions, not its game: ``get_env_info()`` (works before the first
reset, like smacv2, whose constructor does not launch StarCraft II), ``reset() -> (obs list, state)``,
``step(actions) -> (reward, terminated, info)`` with ``battle_won`` / ``dead_allies`` / ``dead_enemies``, the time
limit reported as ``terminated`` with no ``episode_limit`` key (smacv2's default ``continuing_episode=False``),
``get_obs()``, ``get_state()``, ``get_avail_actions()`` (a dead agent may only take action 0, the no-op), ``close()``
and a ``version`` attribute once the "game" runs.

A toy battle: actions 0 no-op, 1 stop, 2-5 move, 6 + j attack enemy j (−0.5 health). While an enemy lives, the
enemies hit the first alive agent that did not move this step (−0.5 health), so: all agents attacking win, all
agents stopping lose, all agents moving reach the time limit.

Variants for the watchdog tests: ``HangingFakeSMACv2`` (the 3rd step never returns), ``CrashingFakeSMACv2`` (the
process dies on the 3rd step). Each fake starts a stand-in "StarCraft II" grandchild process at reset (``sleep``)
and appends its pid to the file named by ``$SMACV2_FAKE_PIDFILE`` when set, so tests can check that a restart
kills it.
"""
from __future__ import annotations

import os
import subprocess
import time
from types import SimpleNamespace

import numpy as np

EPISODE_LIMIT = 30


class FakeSMACv2:
    FAIL_AT_STEP = None

    def __init__(self, capability_config, map_name, **kwargs):
        self.n_agents = int(capability_config["n_units"])
        self.n_enemies = int(capability_config["n_enemies"])
        self.map_name = map_name
        self.kwargs = kwargs
        self.n_actions = 6 + self.n_enemies
        self.episode_limit = EPISODE_LIMIT
        self.version = None
        self._sc2 = None
        self._steps = 0

    # -- smacv2 API -----------------------------------------------------------------------------------
    def get_env_info(self):
        return {
            "state_shape": self.n_agents + self.n_enemies + 1,
            "obs_shape": 1 + self.n_enemies + 1,
            "cap_shape": 0,
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def reset(self):
        if self._sc2 is None:  # "launch StarCraft II" on the first reset, as smacv2 does
            self._sc2 = subprocess.Popen(["sleep", "3600"])
            pidfile = os.environ.get("SMACV2_FAKE_PIDFILE")
            if pidfile:
                with open(pidfile, "a") as f:
                    f.write(f"{self._sc2.pid}\n")
            self.version = SimpleNamespace(game_version="fake-4.10")
        self.ally_health = np.ones(self.n_agents)
        self.enemy_health = np.ones(self.n_enemies)
        self._steps = 0
        return self.get_obs(), self.get_state()

    def step(self, actions):
        self._steps += 1
        if self.FAIL_AT_STEP is not None and self._steps == self.FAIL_AT_STEP:
            self._fail()
        actions = [int(a) for a in actions]
        avail = self.get_avail_actions()
        for i, a in enumerate(actions):
            if not avail[i][a]:
                raise AssertionError(f"Agent {i} cannot perform action {a}")  # smacv2 asserts the same
        before = self.enemy_health.sum()
        for a in actions:
            if a >= 6:
                j = a - 6
                self.enemy_health[j] = max(0.0, self.enemy_health[j] - 0.5)
        standing = [i for i, a in enumerate(actions) if self.ally_health[i] > 0 and not 2 <= a <= 5]
        if standing and (self.enemy_health > 0).any():
            target = standing[0]
            self.ally_health[target] = max(0.0, self.ally_health[target] - 0.5)
        reward = float(before - self.enemy_health.sum())
        dead_allies = int((self.ally_health == 0).sum())
        dead_enemies = int((self.enemy_health == 0).sum())
        info = {"battle_won": False, "dead_allies": dead_allies, "dead_enemies": dead_enemies}
        terminated = False
        if dead_enemies == self.n_enemies and dead_allies < self.n_agents:
            terminated, info["battle_won"] = True, True
            reward += 10.0
        elif dead_allies == self.n_agents:
            terminated = True
        elif self._steps >= self.episode_limit:
            terminated = True  # smacv2: the time limit is reported as terminated, no episode_limit key
        return reward, terminated, info

    def get_obs(self):
        t = self._steps / self.episode_limit
        return [
            np.concatenate([[self.ally_health[i]], self.enemy_health, [t]]).astype(np.float32)
            if self.ally_health[i] > 0 else np.zeros(2 + self.n_enemies, dtype=np.float32)
            for i in range(self.n_agents)
        ]

    def get_state(self):
        return np.concatenate([self.ally_health, self.enemy_health, [self._steps / self.episode_limit]]).astype(
            np.float32
        )

    def get_avail_actions(self):
        out = []
        for i in range(self.n_agents):
            row = [0] * self.n_actions
            if self.ally_health[i] > 0:
                row[1:6] = [1] * 5
                for j in range(self.n_enemies):
                    row[6 + j] = int(self.enemy_health[j] > 0)
            else:
                row[0] = 1
            out.append(row)
        return out

    def close(self):
        if self._sc2 is not None:
            self._sc2.kill()
            self._sc2.wait()
            self._sc2 = None

    def _fail(self):
        raise NotImplementedError


class HangingFakeSMACv2(FakeSMACv2):
    FAIL_AT_STEP = 3

    def _fail(self):
        time.sleep(3600)


class CrashingFakeSMACv2(FakeSMACv2):
    FAIL_AT_STEP = 3

    def _fail(self):
        os._exit(3)
