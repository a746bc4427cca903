"""SMAX team envs (JaxMARL): battle outcomes, time limit, death masking, sight range, config, scripted expert."""
import sys

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
    from rllib_mil.envs import overcooked, smax

    # A None entry in sys.modules makes every import of that module fail, as when JaxMARL is not installed.
    for name in ("jaxmarl", "jaxmarl.environments", "jaxmarl.environments.smax", "jaxmarl.environments.overcooked"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[smax\]"):
        smax.import_jaxmarl_smax()
    with pytest.raises(ImportError, match=r"overcooked/\.\.\. team envs need JaxMARL"):
        overcooked.import_jaxmarl_overcooked()


def test_scripted_expert_beats_random():
    env = make_team_env("smax/3m")
    exp_ret, exp_wins = episode_outcomes(env, make_expert("scripted", env), 10, 0)
    rnd_ret, rnd_wins = episode_outcomes(env, make_expert("random", env), 10, 0)
    assert len(exp_wins) == 10 and exp_ret.mean() > rnd_ret.mean() + 0.5
    assert np.mean(exp_wins) >= 0.3 and np.mean(rnd_wins) == 0.0


@pytest.mark.parametrize("env_id", ["smax/smacv2_5_units", "smax/3m"])
def test_vector_env_steps_like_sync_vector_env_of_single_envs(env_id):
    """The batched SMAX backend (one vmapped JAX call for all battles) gives, step for step, what gymnasium's
    SyncVectorEnv over SMAXTeamEnvs gives with the same seed: observations, rewards, ends, infos, autoresets."""
    import gymnasium as gym

    from rllib_mil.envs import INFO_AGENT_REWARDS, make_team_vector_env
    from rllib_mil.envs.smax_vector import SMAXVectorTeamEnv

    n = 3
    cfg = {"max_steps": 30}  # short battles: several autoresets within the run
    vec = make_team_vector_env(env_id, cfg, n)
    assert isinstance(vec, SMAXVectorTeamEnv) and vec.num_envs == n
    sync = gym.vector.SyncVectorEnv([lambda: make_team_env(env_id, cfg) for _ in range(n)])
    assert vec.single_observation_space == sync.single_observation_space
    o1, _ = vec.reset(seed=5)
    o2, _ = sync.reset(seed=5)
    rng, ends = np.random.default_rng(0), 0
    for t in range(120):
        for k in (OBS, STATE, ACTION_MASK):
            np.testing.assert_allclose(o1[k], o2[k], atol=1e-6, err_msg=f"step {t} {k}")
        m = o1[ACTION_MASK]
        a = np.array([[rng.choice(np.flatnonzero(m[i, j])) for j in range(m.shape[1])] for i in range(n)])
        o1, r1, te1, tr1, i1 = vec.step(a)
        o2, r2, te2, tr2, i2 = sync.step(a)
        np.testing.assert_allclose(r1, r2, atol=1e-6)
        assert (te1 == te2).all() and (tr1 == tr2).all(), t
        for k in (INFO_BATTLE_WON, "dead_allies", INFO_AGENT_REWARDS):
            present = i2.get(f"_{k}", np.zeros(n, bool))
            assert (i1[f"_{k}"] == present).all(), (t, k)
            np.testing.assert_allclose(np.asarray(i1[k])[present], np.asarray(i2[k])[present])
        ends += int((te1 | tr1).sum())
    assert ends >= 2 * n  # autoresets were exercised
    # An action the mask forbids gets the single env's message.
    obs, _ = vec.reset(seed=1)
    mask = np.asarray(obs[ACTION_MASK])
    actions = mask.argmax(axis=-1)  # (n, agents): the first available action of each agent
    j, a = np.argwhere(mask[0] == 0)[0]  # an attack on an enemy out of range at the start
    actions[0, j] = a
    with pytest.raises(ValueError, match="not available"):
        vec.step(actions)


def test_rllib_env_runner_uses_the_batched_backend():
    """gym_env_vectorize_mode="vector_entry_point": RLlib's env runner builds the batched SMAX env and samples whole
    episodes with the win flag in their infos; other team envs get a SyncVectorEnv under the same setting."""
    import torch
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rllib_mil.algorithms.mappo import MAPPOConfig
    from rllib_mil.envs.smax_vector import SMAXVectorTeamEnv

    torch.set_num_threads(1)
    for env_id, cls in (("smax/3m", SMAXVectorTeamEnv), ("mpe/simple_spread", gym_sync())):
        cfg = (MAPPOConfig().environment(env_id, env_config={"max_steps": 20} if env_id.startswith("smax") else {})
               .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=30,
                            gym_env_vectorize_mode="vector_entry_point"))
        runner = SingleAgentEnvRunner(config=cfg)
        assert isinstance(runner.env.unwrapped, cls)
        episodes = runner.sample(num_episodes=6)
        assert len(episodes) >= 6 and all(ep.is_done for ep in episodes)
        if env_id.startswith("smax"):
            assert all(INFO_BATTLE_WON in ep.get_infos(-1) for ep in episodes)
        runner.stop()


def gym_sync():
    import gymnasium as gym

    return gym.vector.SyncVectorEnv
