"""SMACv2 adapter against the CONTRACT FAKE (tests/smacv2_fake.py): outcomes, time limit, death masking, the
watchdog (a hanging and a crashing backend, StarCraft II's process group killed), and the missing-SC2 error."""
import os
import time

import numpy as np
import pytest

from rllib_mil.envs import ACTION_MASK, INFO_BATTLE_WON, OBS, make_team_env
from helpers import rollout_steps
from rllib_mil.envs.smacv2 import INFO_SC2_BUILD, INFO_SC2_RESTART, NO_OP_ACTION, SMACV2_ENV_IDS, backend_kwargs

FAKE = "smacv2_fake:FakeSMACv2"


def fake_env(env_id="smacv2/protoss_5_vs_5", backend=FAKE, **cfg):
    return make_team_env(env_id, {"backend": backend, **cfg})


def attack_first_enemy_available(obs):
    m = obs[ACTION_MASK]
    return np.array([np.flatnonzero(row)[-1] if row[6:].any() else np.flatnonzero(row)[0] for row in m])


def run(env, policy):
    return rollout_steps(env, policy, seed=0)


def test_six_paper_tasks_and_their_capability_configs():
    assert SMACV2_ENV_IDS == tuple(
        f"smacv2/{r}_{s}" for r in ("protoss", "terran", "zerg") for s in ("5_vs_5", "10_vs_10"))
    kw = backend_kwargs("smacv2/zerg_10_vs_10", {"game_version": None, "seed": 3})
    cap = kw["capability_config"]
    assert kw["map_name"] == "10gen_zerg" and (cap["n_units"], cap["n_enemies"]) == (10, 10)
    assert cap["team_gen"]["unit_types"] == ["zergling", "baneling", "hydralisk"]
    assert cap["team_gen"]["exception_unit_types"] == ["baneling"]
    assert cap["start_positions"]["dist_type"] == "surrounded_and_reflect" and kw["seed"] == 3
    env = fake_env("smacv2/terran_10_vs_10")
    assert (env.n_agents, env.n_actions, env.n_enemies) == (10, 16, 10)
    env.close()


def test_win_loss_and_time_limit():
    env = fake_env()
    info, steps = run(env, attack_first_enemy_available)
    assert info[INFO_SC2_BUILD] == "fake-4.10"
    *_, (obs, r, term, trunc, last, nxt) = steps
    assert term and not trunc and last[INFO_BATTLE_WON] is True and last["dead_enemies"] == 5
    assert r > 10  # the win reward
    _, steps = run(env, lambda o: np.array([np.flatnonzero(row)[0] if row[0] else 1 for row in o[ACTION_MASK]]))
    assert steps[-1][2] and not steps[-1][3] and steps[-1][4][INFO_BATTLE_WON] is False
    assert steps[-1][4]["dead_allies"] == 5
    # moving away all the time: nobody dies, smacv2 says "terminated" at the episode limit -> truncated here
    _, steps = run(env, lambda o: np.full(5, 2))
    assert len(steps) == 30 and [s[2:4] for s in steps[-2:]] == [(False, False), (False, True)]
    env.close()


def test_death_masking():
    env = fake_env()
    _, steps = run(env, lambda o: np.array([np.flatnonzero(row)[0] if row[0] else 1 for row in o[ACTION_MASK]]))
    partial = 0
    for *_, info, nxt in steps:
        dead = nxt[ACTION_MASK][:, NO_OP_ACTION] > 0
        assert int(dead.sum()) == info["dead_allies"]
        assert (nxt[ACTION_MASK][dead].sum(axis=1) == 1).all() and not nxt[OBS][dead].any()
        partial += 0 < dead.sum() < 5
    assert partial > 0
    env.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill 0: read its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("backend,cause", [("smacv2_fake:HangingFakeSMACv2", "TimeoutError"),
                                           ("smacv2_fake:CrashingFakeSMACv2", "ConnectionError")])
def test_watchdog_restarts_starcraft_on_hang_and_crash(backend, cause, tmp_path, monkeypatch):
    pidfile = tmp_path / "sc2.pids"
    monkeypatch.setenv("SMACV2_FAKE_PIDFILE", str(pidfile))
    env = fake_env(backend=backend, step_timeout_s=1.5)
    env.reset(seed=0)
    sc2_pid = int(pidfile.read_text().split()[0])
    assert _alive(sc2_pid)
    t0 = time.time()
    for k in range(3):
        obs, r, term, trunc, info = env.step(np.full(5, 2))
    # the 3rd step hangs (or kills the worker): the episode ends truncated, StarCraft II's process group is gone
    assert trunc and not term and r == 0.0 and info[INFO_SC2_RESTART].startswith(cause)
    assert time.time() - t0 < 15 and env.restarts == 1
    for _ in range(50):
        if not _alive(sc2_pid):
            break
        time.sleep(0.1)
    assert not _alive(sc2_pid), "the stand-in StarCraft II process survived the restart"
    # training goes on: a fresh worker and a fresh "StarCraft II"
    obs, info = env.reset(seed=1)
    assert INFO_SC2_BUILD in info and len(pidfile.read_text().split()) == 2
    obs, r, term, trunc, info = env.step(np.full(5, 2))
    assert not trunc
    env.close()
    new_pid = int(pidfile.read_text().split()[1])
    for _ in range(50):
        if not _alive(new_pid):
            break
        time.sleep(0.1)
    assert not _alive(new_pid)  # close() ends StarCraft II too


def test_building_does_not_launch_starcraft(tmp_path, monkeypatch):
    pidfile = tmp_path / "sc2.pids"
    monkeypatch.setenv("SMACV2_FAKE_PIDFILE", str(pidfile))
    env = fake_env()
    assert env.observation_space is not None and not pidfile.exists()  # spaces known, no game started
    env.close()


def test_missing_starcraft_fails_at_once_with_the_fix(monkeypatch, tmp_path):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "smacv2":
            raise ImportError("No module named 'smacv2'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(RuntimeError, match=r"`smacv2` package is not installed.*SC2PATH.*cluster/.*smax/smacv2_5_units"):
        make_team_env("smacv2/protoss_5_vs_5")
    monkeypatch.setattr(importlib, "import_module", lambda name, *a, **k: object() if name == "smacv2" else real(name))
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match=r"StarCraft II not found: SC2PATH=.*nowhere.*smax/smacv2_10_units"):
        make_team_env("smacv2/terran_10_vs_10")
    (tmp_path / "nowhere" / "Versions").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"10gen_zerg\.SC2Map is missing"):
        make_team_env("smacv2/zerg_5_vs_5")


def test_config_validation():
    with pytest.raises(ValueError, match="step_timeout_s"):
        fake_env(step_timeout_s=0)
    with pytest.raises(ValueError, match="backend"):
        make_team_env("smacv2/protoss_5_vs_5", {"backend": "no_colon"})
    with pytest.raises(ValueError, match=r"Unknown env_config key\(s\) \['map_name'\]"):
        fake_env(map_name="8m")
