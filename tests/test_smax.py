"""SMAX team envs (JaxMARL): battle outcomes, time limit, death masking, sight range, config, scripted expert."""
import builtins

import numpy as np
import pytest

from rllib_mil.data.experts import episode_outcomes, make_expert
from rllib_mil.envs import ACTION_MASK, INFO_BATTLE_WON, OBS, STATE, make_team_env
from rllib_mil.envs.smax import FIRST_ATTACK_ACTION, OWN_FEATURES, STOP_ACTION, UNIT_FEATURES
from helpers import rollout_steps


def run(env, policy, seed=0):
    return rollout_steps(env, policy, seed)[1]


def test_dims_and_action_layout():
    env = make_team_env("smax/3m")
    assert (env.n_agents, env.n_actions) == (3, FIRST_ATTACK_ACTION + 3)
    assert env.obs_dim == (2 + 3) * UNIT_FEATURES + OWN_FEATURES  # 2 other allies, 3 enemies, own
    assert env.state_dim == 6 * OWN_FEATURES + 1
    obs, _ = env.reset(seed=0)
    # at the start everyone is alive and out of attack range: moves and stop, no attacks
    np.testing.assert_array_equal(obs[ACTION_MASK], np.tile([1, 1, 1, 1, 1, 0, 0, 0], (3, 1)))
    assert 0.0 <= obs[STATE].min() and obs[STATE].max() <= 1.0 and obs[STATE][-1] == 0.0


def test_scripted_win_is_battle_won_and_terminated():
    # Enemies that never shoot: focus fire wins every battle.
    env = make_team_env("smax/3m", {"enemy_shoots": False})
    expert = make_expert("scripted", env)
    steps = run(env, lambda o: expert.act(o, None))
    obs, r, term, trunc, info, last = steps[-1]
    assert term and not trunc and info[INFO_BATTLE_WON] is True
    assert info["dead_enemies"] == 3 and info["dead_allies"] == 0
    assert not any(s[4][INFO_BATTLE_WON] for s in steps[:-1])
    ret = sum(s[1] for s in steps)
    assert ret == pytest.approx(2.0, abs=1e-4)  # all enemy health (1.0) + the win bonus (1.0)
    # every attack action taken was available, and the last state shows no enemy alive
    assert last[STATE][3 * OWN_FEATURES : 6 * OWN_FEATURES].sum() == 0


def test_scripted_loss_masks_dead_agents():
    # Allies that only stop lose; each dead ally observes zeros and may only take the stop (no-op) action.
    env = make_team_env("smax/3m")
    steps = run(env, lambda o: np.full(3, STOP_ACTION))
    *_, (obs, r, term, trunc, info, last) = steps
    assert term and not trunc and info[INFO_BATTLE_WON] is False and info["dead_allies"] == 3
    seen_partial = False
    for *_, info, nxt in steps:
        dead = nxt[ACTION_MASK][:, :STOP_ACTION].sum(axis=1) == 0
        assert info["dead_allies"] == int(dead.sum())
        for i in np.flatnonzero(dead):
            assert not nxt[OBS][i].any()
            np.testing.assert_array_equal(np.flatnonzero(nxt[ACTION_MASK][i]), [STOP_ACTION])
        seen_partial |= 0 < dead.sum() < 3
    assert seen_partial  # the test saw a step with some (not all) allies dead
    with pytest.raises(ValueError, match="not available"):
        env.reset(seed=0)
        env.step(np.full(3, FIRST_ATTACK_ACTION))  # nobody is in range at the start


def test_time_limit_is_truncation():
    env = make_team_env("smax/3m", {"max_steps": 4})
    steps = run(env, lambda o: np.full(3, STOP_ACTION))
    assert [(s[2], s[3]) for s in steps] == [(False, False)] * 3 + [(False, True)]
    assert steps[-1][4][INFO_BATTLE_WON] is False
    assert steps[-1][5][STATE][-1] == pytest.approx(1.0)  # elapsed fraction t / max_steps


def test_sight_range_zero_sees_only_itself():
    env = make_team_env("smax/3m", {"sight_range": 0})
    obs, _ = env.reset(seed=0)
    others = obs[OBS][:, : 5 * UNIT_FEATURES]
    assert not others.any() and obs[OBS][:, 5 * UNIT_FEATURES :].any()
    full = make_team_env("smax/3m").reset(seed=0)[0]
    assert full[OBS][:, : 2 * UNIT_FEATURES].any()  # allies start within sight of each other


def test_config_validation_and_unknown_map():
    with pytest.raises(ValueError, match=r"Unknown env_config key\(s\) \['sight'\].*allowed keys"):
        make_team_env("smax/3m", {"sight": 1})
    with pytest.raises(ValueError, match="attack_mode"):
        make_team_env("smax/3m", {"attack_mode": "weakest"})
    with pytest.raises(ValueError, match="max_steps"):
        make_team_env("smax/3m", {"max_steps": 0})
    with pytest.raises(ValueError, match="Unknown team env id 'smax/4m'"):
        make_team_env("smax/4m")


def test_missing_jaxmarl_names_the_extra(monkeypatch):
    from rllib_mil.envs import smax

    real_import = builtins.__import__

    def no_jaxmarl(name, *args, **kwargs):
        if name.startswith("jaxmarl"):
            raise ImportError("No module named 'jaxmarl'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jaxmarl)
    with pytest.raises(ImportError, match=r"pip install -e \.\[smax\]"):
        smax.import_jaxmarl_smax()


def test_scripted_expert_beats_random():
    env = make_team_env("smax/3m")
    exp_ret, exp_wins = episode_outcomes(env, make_expert("scripted", env), 10, 0)
    rnd_ret, rnd_wins = episode_outcomes(env, make_expert("random", env), 10, 0)
    assert len(exp_wins) == 10 and exp_ret.mean() > rnd_ret.mean() + 0.5
    assert np.mean(exp_wins) >= 0.3 and np.mean(rnd_wins) == 0.0
