"""Team environments: gymnasium contract, shapes, masks, rewards, config validation, registry."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector.utils import batch_space

from rllib_mil.envs import (
    ACTION_MASK,
    INFO_AGENT_REWARDS,
    OBS,
    STATE,
    MaskedMultiDiscrete,
    TeamEnv,
    list_team_envs,
    make_team_env,
    register_team_env,
    register_with_ray,
)

# env id, env_config, (n_agents, obs_dim, state_dim, n_actions)
CASES = [
    ("mpe/simple_spread", {}, (3, 18, 54, 5)),
    ("mpe/simple_spread", {"N": 4}, (4, 24, 96, 5)),
    ("mpe/simple_reference", {}, (2, 21, 42, 50)),
    ("mpe/simple_speaker_listener", {}, (2, 11, 14, 5)),
]
IDS = [f"{e.split('/')[1]}-{c.get('N', '')}" for e, c, _ in CASES]


@pytest.mark.filterwarnings("ignore:.*infinity")  # the contract's Boxes are unbounded on purpose
@pytest.mark.parametrize("env_id,cfg,dims", CASES, ids=IDS)
def test_env_checker(env_id, cfg, dims):
    env = make_team_env(env_id, cfg)
    assert isinstance(env, TeamEnv)
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id,cfg,dims", CASES, ids=IDS)
def test_spaces_shapes_dtypes(env_id, cfg, dims):
    n, d, s, a = dims
    env = make_team_env(env_id, cfg)
    assert (env.n_agents, env.obs_dim, env.state_dim, env.n_actions) == dims
    assert len(env.agent_names) == n
    spec = env.spec_dict()
    assert spec["env_id"] == env_id and (spec["n_agents"], spec["obs_dim"], spec["state_dim"], spec["n_actions"]) == dims
    assert env.action_space.nvec.tolist() == [a] * n
    obs, info = env.reset(seed=3)
    assert set(obs) == {OBS, STATE, ACTION_MASK}
    assert obs[OBS].shape == (n, d) and obs[OBS].dtype == np.float32
    assert obs[STATE].shape == (s,) and obs[STATE].dtype == np.float32
    assert obs[ACTION_MASK].shape == (n, a) and obs[ACTION_MASK].dtype == np.float32
    assert obs in env.observation_space
    steps = 0
    while True:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        steps += 1
        assert isinstance(r, float)
        ar = info[INFO_AGENT_REWARDS]
        assert ar.shape == (n,) and ar.dtype == np.float32
        assert r == pytest.approx(float(ar.astype(np.float64).mean()), abs=1e-5)
        assert obs in env.observation_space
        assert term is False
        if trunc:
            break
    assert steps == env.env_config["max_cycles"] == 25


def test_seeding_reproducible_across_resets():
    env = make_team_env("mpe/simple_spread")
    a = [env.reset(seed=7)[0][STATE]] + [env.reset()[0][STATE] for _ in range(2)]
    b = [env.reset(seed=7)[0][STATE]] + [env.reset()[0][STATE] for _ in range(2)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(env.reset(seed=8)[0][STATE], a[0])


def test_truncation_at_max_cycles_and_step_after_end():
    env = make_team_env("mpe/simple_speaker_listener", {"max_cycles": 4})
    env.reset(seed=0)
    flags = [env.step(np.array([0, 0]))[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0, 0]))


def test_speaker_listener_padding_and_mask():
    env = make_team_env("mpe/simple_speaker_listener")
    assert env.agent_names == ["speaker_0", "listener_0"]
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[ACTION_MASK], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert np.all(obs[OBS][0, 3:] == 0)  # speaker sees 3 numbers (goal colour), padded to 11
    assert obs[OBS][0, :3].max() > 0
    # action_space.sample() never proposes a padded action, batched too (vector envs)
    samples = np.stack([env.action_space.sample() for _ in range(300)])
    assert samples[:, 0].max() <= 2 and samples[:, 1].max() == 4
    batched = batch_space(env.action_space, 8)
    assert isinstance(batched, MaskedMultiDiscrete)
    assert np.stack([batched.sample() for _ in range(50)])[:, :, 0].max() <= 2
    for bad in (3, 4):
        with pytest.raises(ValueError, match=r"action %d of agent 0 \(speaker_0\) is not available" % bad):
            env.step(np.array([bad, 0]))
    with pytest.raises(ValueError, match="out of range"):
        env.step(np.array([0, 5]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="integers"):
        env.step(np.array([0.5, 1.0]))
    # the speaker's utterance (action = word index) arrives in the listener's comm slots
    obs, *_ = env.step(np.array([2, 0]))
    np.testing.assert_array_equal(obs[OBS][1, 8:11], [0, 0, 1])


def test_reference_action_encoding_move_plus_5_say():
    env = make_team_env("mpe/simple_reference")
    env.reset(seed=0)
    say, move = 7, 2  # +x
    obs, *_ = env.step(np.array([move + 5 * say, 0]))
    comm_heard_by_1 = obs[OBS][1, 11:21]
    assert comm_heard_by_1.argmax() == say and comm_heard_by_1.sum() == 1
    np.testing.assert_allclose(obs[OBS][0, 0:2], [0.5, 0.0])  # v = 0.5 * unit after one push
    np.testing.assert_allclose(obs[OBS][1, 0:2], [0.0, 0.0])


def test_per_agent_rewards_follow_local_ratio():
    # local_ratio=1: reward_i = -(collisions of agent i); place nothing, just check consistency with mean
    env = make_team_env("mpe/simple_spread", {"local_ratio": 0.0})
    env.reset(seed=1)
    _, r, _, _, info = env.step(np.zeros(3, dtype=np.int64))
    ar = info[INFO_AGENT_REWARDS]
    assert np.allclose(ar, ar[0]) and r == pytest.approx(float(ar[0]), abs=1e-6) and r < 0
    env = make_team_env("mpe/simple_reference", {"local_ratio": 1.0})
    env.reset(seed=1)
    _, r, _, _, info = env.step(np.zeros(2, dtype=np.int64))
    ar = info[INFO_AGENT_REWARDS]
    assert ar[0] != ar[1] and r == pytest.approx(float(ar.mean()), abs=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match=r"Unknown env_config key\(s\) \['n_agents'\].*allowed keys: \['N', 'local_ratio', 'max_cycles'\]"):
        make_team_env("mpe/simple_spread", {"n_agents": 3})
    with pytest.raises(ValueError, match=r"\['local_ratio'\].*allowed keys: \['max_cycles'\]"):
        make_team_env("mpe/simple_speaker_listener", {"local_ratio": 0.5})
    with pytest.raises(ValueError, match="max_cycles"):
        make_team_env("mpe/simple_reference", {"max_cycles": 0})
    with pytest.raises(ValueError, match="local_ratio"):
        make_team_env("mpe/simple_spread", {"local_ratio": 1.5})
    with pytest.raises(ValueError, match="'N'"):
        make_team_env("mpe/simple_spread", {"N": True})
    env = make_team_env("mpe/simple_spread", {"N": np.int64(2), "max_cycles": 10})
    assert env.env_config == {"N": 2, "local_ratio": 0.5, "max_cycles": 10}
    assert all(type(v) in (int, float) for v in env.env_config.values())  # JSON-serialisable


def test_env_context_accepted():
    from ray.rllib.env.env_context import EnvContext

    ctx = EnvContext({"N": 4, "max_cycles": 7}, worker_index=2, num_workers=3, vector_index=1)
    env = make_team_env("mpe/simple_spread", ctx)
    assert env.n_agents == 4 and env.env_config == {"N": 4, "local_ratio": 0.5, "max_cycles": 7}
    with pytest.raises(ValueError, match="bogus"):
        make_team_env("mpe/simple_spread", EnvContext({"bogus": 1}, worker_index=0))


def test_unknown_env_id_lists_known_ids():
    with pytest.raises(ValueError, match=r"Unknown team env id 'mpe/simple_tag'.*mpe/simple_spread"):
        make_team_env("mpe/simple_tag")
    assert {"mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"} <= set(list_team_envs())


def test_register_custom_env_and_with_ray(monkeypatch):
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from rllib_mil.envs import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep test ids out of other tests

    register_team_env("test/spread2", lambda cfg: make_team_env("mpe/simple_spread", {**(cfg or {}), "N": 2}))
    assert make_team_env("test/spread2").n_agents == 2
    ids = register_with_ray()
    ids2 = register_with_ray()  # idempotent
    assert ids == ids2 and "test/spread2" in ids
    for env_id in ["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener", "test/spread2"]:
        assert _global_registry.contains(ENV_CREATOR, env_id)
    creator = _global_registry.get(ENV_CREATOR, "mpe/simple_spread")
    env = creator({"N": 4})
    assert isinstance(env, TeamEnv) and env.n_agents == 4
    register_team_env("test/not_a_team_env", lambda cfg: object())
    with pytest.raises(TypeError, match="not a TeamEnv"):
        make_team_env("test/not_a_team_env")
