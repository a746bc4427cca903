"""Integration tests of every registered RL algorithm (the expert trainers, e.g. MAPPO) on real team envs.

Parametrized over ``rllib_mil.algorithms.registry.RL``: a newly registered RL algorithm is tested by being
registered. Runs in-process (num_env_runners=0) on the session's Ray instance.
"""
import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from helpers import assert_rollouts_respect_masks, nan_loss
from rllib_mil.algorithms.mappo import mappo_learner
from rllib_mil.algorithms.registry import RL
from rllib_mil.data.experts import RandomExpert, episode_outcomes
from rllib_mil.envs import make_team_env
from rllib_mil.envs.contract import OBS
from rllib_mil.evaluation import CheckpointExpert, ModulePolicy, evaluate_checkpoint, load_team_module

RL_NAMES = sorted(RL)
MODULE_ID = "default_policy"
SPREAD = "mpe/simple_spread"
SPEAKER_LISTENER = "mpe/simple_speaker_listener"

# Small, fast settings: 500 env steps (20 episodes) per iteration.
SMALL = dict(train_batch_size_per_learner=500, minibatch_size=250, num_epochs=2)


def make_config(name, env=SPREAD, env_config=None, **training):
    _, config_cls = RL[name]
    return (
        config_cls()
        .environment(env, env_config=dict(env_config or {}))
        .training(**{**SMALL, **training})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .fault_tolerance(restart_failed_env_runners=False)
        .debugging(seed=0)
    )


def learner_module(algo):
    return algo.learner_group._learner.module[MODULE_ID]


def env_runner_module(algo):
    m = algo.env_runner.module
    return m[MODULE_ID] if hasattr(m, "keys") else m


def greedy_rollout_actions(module, env_id=SPREAD, steps=60, seed=0):
    """Greedy actions of ``module`` along one fixed trajectory (the first module's actions drive the env)."""
    env = make_team_env(env_id)
    policy = ModulePolicy(module)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        a = policy.act(obs, np.random.default_rng(0))
        out.append(a)
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset(seed=seed + 1)
            policy.reset()
    env.close()
    return np.stack(out)


@pytest.fixture(scope="module", params=[(n, gru) for n in RL_NAMES for gru in (False, True)],
                ids=lambda p: f"{p[0]}-{'gru' if p[1] else 'mlp'}")
def trained(request, ray_session):
    """Each RL algorithm, feed-forward and recurrent actor, trained 2 small iterations on simple_spread."""
    name, gru = request.param
    algo = make_config(name, use_gru=gru).build_algo()
    try:
        initial = {k: np.array(v, copy=True) for k, v in algo.learner_group.get_weights()[MODULE_ID].items()}
        results = [algo.train() for _ in range(2)]
        yield SimpleNamespace(name=name, gru=gru, algo=algo, initial=initial, results=results)
    finally:
        algo.stop()


# ------------------------------------------------------------------------------------------------ training
def test_trains_and_reports_metrics(trained):
    last = trained.results[-1]
    assert last["num_env_steps_sampled_lifetime"] == 2 * SMALL["train_batch_size_per_learner"]
    stats = last["learners"][MODULE_ID]
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_explained_var", "clip_fraction",
                "value_mean", "value_norm_mean", "value_norm_std"):
        assert key in stats, f"learner metric {key!r} missing; got {sorted(stats)}"
        assert math.isfinite(float(stats[key])), (key, stats[key])
    # Per-agent entropy of 5 actions: at most ln 5.
    assert 0.0 < float(stats["entropy"]) <= math.log(5) + 1e-4
    # MPE spread costs are negative: the value normaliser has seen negative returns.
    assert float(stats["value_norm_mean"]) < 0.0 and float(stats["value_mean"]) < 0.0
    now = trained.algo.learner_group.get_weights()[MODULE_ID]
    for prefix in ("actor.", "critic."):
        keys = [k for k in now if k.startswith(prefix)]
        assert keys and any(not np.array_equal(now[k], trained.initial[k]) for k in keys), prefix


def test_env_runner_module_is_actor_only_and_synced(trained):
    er, full = env_runner_module(trained.algo), learner_module(trained.algo)
    assert er.inference_only and not full.inference_only
    assert getattr(er, "critic", None) is None and isinstance(full.critic, torch.nn.Module)
    er_state = {k: v.detach().cpu().numpy() for k, v in er.state_dict().items()}
    assert er_state and all(k.startswith("actor.") for k in er_state), sorted(er_state)
    learner_actor = {k: v for k, v in trained.algo.learner_group.get_weights()[MODULE_ID].items()
                     if k.startswith("actor.")}
    assert set(er_state) == set(learner_actor)
    for k in er_state:
        np.testing.assert_array_equal(er_state[k], learner_actor[k], err_msg=k)
    assert er.is_stateful() == trained.gru


def test_checkpoint_round_trip(trained, tmp_path):
    algo = trained.algo
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    restored = Algorithm.from_checkpoint(path)
    try:
        assert type(restored) is type(algo) and restored.config.use_gru == trained.gru
        ref = greedy_rollout_actions(learner_module(algo))
        for what, module in {
            "env runner": env_runner_module(algo),
            "restored learner": learner_module(restored),
            "restored env runner": env_runner_module(restored),
            "evaluation loader": load_team_module(path)[0],
        }.items():
            np.testing.assert_array_equal(greedy_rollout_actions(module), ref, err_msg=f"greedy actions: {what}")
        # Value normaliser statistics (buffers) are part of the checkpoint (RLlib stores them as float32).
        a, b = learner_module(algo).value_normalizer, learner_module(restored).value_normalizer
        assert a.debiasing_term.item() > 0
        for x, y in zip(a.mean_std(), b.mean_std()):
            assert torch.allclose(x, y, rtol=1e-5), (x, y)
        assert math.isfinite(restored.train()["learners"][MODULE_ID]["policy_loss"])
    finally:
        restored.stop()
    res = evaluate_checkpoint(path, episodes=2)
    assert res["env"] == SPREAD and math.isfinite(res["return_mean"])


def test_sampled_expert_actions_are_reproducible(trained, tmp_path):
    """A checkpoint as stochastic expert: the same rng gives the same actions; greedy ignores the rng."""
    path = str(tmp_path / "ckpt")
    trained.algo.save_to_path(path)
    env = make_team_env(SPREAD)
    obs, _ = env.reset(seed=3)

    def first_action(expert, s):  # first step of an episode (recurrent experts start from a fresh state)
        expert.reset()
        return tuple(expert.act(obs, np.random.default_rng(s)))

    stoch = CheckpointExpert(path, env_id=SPREAD, stochastic=True)
    draws = [first_action(stoch, s) for s in range(20)]
    assert draws == [first_action(stoch, s) for s in range(20)]
    assert len(set(draws)) > 1  # near-uniform young policy: 20 draws are not all equal
    greedy = CheckpointExpert(path, env_id=SPREAD)
    assert len({first_action(greedy, s) for s in range(5)}) == 1
    env.close()


# ------------------------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("name", RL_NAMES)
def test_learns_spread_above_random(name, build):
    """12 iterations x 2000 steps (24k env steps, ~30 s on 2 CPUs) on simple_spread N=3. Measured at this budget
    on the same 40 evaluation episodes: random -26.8, greedy MAPPO -21.6 / -19.8 / -20.2 (seeds 0 / 1 / 2), i.e.
    5.2 to 7.0 above random. The test asks for at least 3.0 above random (standard error of each mean ~1.2)."""
    algo = build(make_config(name, train_batch_size_per_learner=2000, minibatch_size=500, num_epochs=10)
                 .env_runners(num_envs_per_env_runner=4))
    for _ in range(12):
        result = algo.train()
    assert result["num_env_steps_sampled_lifetime"] == 24_000
    env = make_team_env(SPREAD)
    try:
        learned, _ = episode_outcomes(env, ModulePolicy(learner_module(algo)), 40, seed=1000)
        random, _ = episode_outcomes(env, RandomExpert(), 40, seed=1000)
    finally:
        env.close()
    assert learned.mean() > random.mean() + 3.0, (learned.mean(), random.mean())


# ------------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("name", RL_NAMES)
def test_rollouts_respect_action_masks(name, build):
    """The untrained (near-uniform) policy on simple_speaker_listener never samples a padded action."""
    algo = build(make_config(name, env=SPEAKER_LISTENER))
    assert_rollouts_respect_masks(algo.env_runner.sample(num_timesteps=200, explore=True))


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "settings,match",
    [
        ({"activation": "swish"}, "activation"),
        ({"use_gru": True, "actor_hidden": []}, "encoder layer"),
        ({"vf_huber_delta": 0.0}, "vf_huber_delta"),
        ({"use_critic": False}, "centralized critic"),
        ({"action_factors": [50]}, "action_factors"),
        ({"action_factors": [5, 1.5]}, "action_factors"),
        ({"minibatch_size": 4000, "train_batch_size_per_learner": 2000}, "minibatch_size"),
        ({"input_norm": "yes"}, "input_norm"),
        ({"actor_out_gain": 0.0}, "actor_out_gain"),
    ],
)
def test_bad_config_fails_validation(settings, match):
    for name in RL_NAMES:
        config = RL[name][1]().environment(SPREAD).training(**settings)
        with pytest.raises(ValueError, match=match):
            config.validate()
    RL[name][1]().environment(SPREAD).validate()  # positive control


def test_non_team_env_is_rejected(build):
    with pytest.raises(Exception, match="team environment"):
        build(make_config(RL_NAMES[0], env="CartPole-v1"))


def test_non_finite_loss_raises(build, monkeypatch):
    algo = build(make_config("MAPPO"))
    monkeypatch.setattr(mappo_learner, "mappo_loss", nan_loss(mappo_learner.mappo_loss))
    with pytest.raises(FloatingPointError, match="not finite") as info:
        algo.train()
    assert "lr" in str(info.value) and "policy_loss" in str(info.value)


def test_mappo_implementation_details_input_norm_and_small_output_gain(build):
    """`input_norm` puts a LayerNorm on the actor's observation rows and the critic's state (the env runner's
    inference-only actor has it too); `actor_out_gain: 0.01` starts from a near-uniform policy. It trains."""
    algo = build(make_config("MAPPO", input_norm=True, actor_out_gain=0.01))
    module = learner_module(algo)
    assert isinstance(module.actor_in_norm, torch.nn.LayerNorm) and isinstance(module.critic[0], torch.nn.LayerNorm)
    er = env_runner_module(algo)
    assert isinstance(er.actor_in_norm, torch.nn.LayerNorm) and not hasattr(er, "critic")
    env = make_team_env(SPREAD)
    obs, _ = env.reset(seed=0)
    batch = {Columns.OBS: {k: torch.as_tensor(np.asarray(v))[None] for k, v in obs.items()}}
    with torch.no_grad():
        logits = module.masked_logits(batch)["logits"][0]  # (n, A)
        # A 64-wide ReLU layer times a 0.01-gain head: every logit within a few hundredths of zero.
        assert logits.abs().max() < 0.1
        # Rows are normalised: scaling an observation does not change the actor's input after the LayerNorm.
        scaled = {Columns.OBS: {**batch[Columns.OBS], OBS: 3.0 * batch[Columns.OBS][OBS]}}
        assert torch.allclose(module.masked_logits(scaled)["logits"], module.masked_logits(batch)["logits"], atol=1e-4)
    result = algo.train()
    assert math.isfinite(result["learners"][MODULE_ID]["policy_loss"])
    plain = learner_module(build(make_config("MAPPO")))
    assert isinstance(plain.actor_in_norm, torch.nn.Identity) and not isinstance(plain.critic[0], torch.nn.LayerNorm)


def test_factored_actions_on_simple_reference(build):
    """`action_factors: [5, 10]` gives the actor one head per factor (15 outputs for the env's 50 actions); it
    samples valid flat actions and trains. Factors that do not multiply to the env's actions fail at build."""
    algo = build(make_config("MAPPO", env="mpe/simple_reference", action_factors=[5, 10]))
    module = learner_module(algo)
    assert module.actor.mlp[-1].out_features == 15 and module.factored.out_dim == 50
    result = algo.train()
    assert math.isfinite(result["learners"][MODULE_ID]["policy_loss"])
    actions = greedy_rollout_actions(module, env_id="mpe/simple_reference", steps=10)
    assert actions.shape == (10, 2) and actions.min() >= 0 and actions.max() < 50
    with pytest.raises(Exception, match=r"describe 25 actions, but the env has 50"):
        build(make_config("MAPPO", env="mpe/simple_reference", action_factors=[5, 5]))


def test_positive_signalling_on_simple_reference(build):
    """`signal_factor: 1` (the word of `action_factors: [5, 10]`) logs the words' batch entropies and their
    difference (the I(o; m) estimate); `signal_bias_coeff` adds L^ps: the same minibatch's loss differs by exactly
    coeff * signal_loss, and the bias pushes the words' mutual information up. Bad settings fail in validate()."""
    from rllib_mil.algorithms.mappo.mappo_learner import (
        SIGNAL_CONDITIONAL_ENTROPY, SIGNAL_LOSS, SIGNAL_MEAN_POLICY_ENTROPY, SIGNAL_MUTUAL_INFO)

    algo = build(make_config("MAPPO", env="mpe/simple_reference", action_factors=[5, 10], signal_factor=1,
                             signal_bias_coeff=1.0, entropy_coeff=0.0, lr=3e-3))
    learner = algo.learner_group._learner
    mi = []
    for _ in range(3):
        res = algo.train()["learners"][MODULE_ID]
        assert 0.0 <= res[SIGNAL_CONDITIONAL_ENTROPY] <= math.log(10) + 1e-4
        assert res[SIGNAL_MEAN_POLICY_ENTROPY] >= res[SIGNAL_CONDITIONAL_ENTROPY] - 1e-4
        assert res[SIGNAL_MUTUAL_INFO] == pytest.approx(
            res[SIGNAL_MEAN_POLICY_ENTROPY] - res[SIGNAL_CONDITIONAL_ENTROPY], abs=1e-4)
        mi.append(res[SIGNAL_MUTUAL_INFO])
    assert mi[-1] > mi[0]  # the bias makes words depend on what the speaker sees
    # One minibatch through compute_loss_for_module with and without the bias: they differ by coeff * L^ps.
    episodes = algo.env_runner.sample(num_timesteps=50)
    batch = learner._learner_connector(rl_module=learner.module, episodes=episodes, batch={},
                                       metrics=learner.metrics)[MODULE_ID]
    module = learner.module[MODULE_ID]
    with torch.no_grad():
        fwd = module.forward_train(batch)
        cfg = learner.config
        norm_state = copy.deepcopy(module.value_normalizer.state_dict())  # the loss updates it: same for both
        with_bias = learner.compute_loss_for_module(module_id=MODULE_ID, config=cfg, batch=batch, fwd_out=fwd)
        ps = learner.metrics.peek((MODULE_ID, SIGNAL_LOSS))
        module.value_normalizer.load_state_dict(norm_state)
        cfg_off = cfg.copy(copy_frozen=False).training(signal_bias_coeff=0.0)
        without = learner.compute_loss_for_module(module_id=MODULE_ID, config=cfg_off, batch=batch, fwd_out=fwd)
    assert float(with_bias - without) == pytest.approx(float(ps), rel=1e-4, abs=1e-5)
    for bad, match in (({"signal_factor": 2}, "index into"), ({"signal_factor": 1, "signal_bias_coeff": -1.0}, ">= 0"),
                       ({"signal_factor": 1, "signal_target_entropy": 5.0}, "ln #words"),
                       ({"signal_bias_coeff": 0.1}, "needs `signal_factor`")):
        with pytest.raises(ValueError, match=match):
            make_config("MAPPO", env="mpe/simple_reference", action_factors=[5, 10], **bad).validate()


def test_agent_credit_on_simple_reference(build):
    """`credit: agent`: the critic has one head per agent, the learner pipeline adds the env's per-agent rewards
    (row-aligned with the steps) and replaces RLlib's GAE with per-agent GAE, so the batch holds (B, n)
    advantages and value targets; training runs and the team reward is unchanged."""
    from ray.rllib.connectors.learner import GeneralAdvantageEstimation
    from ray.rllib.evaluation.postprocessing import Postprocessing

    from rllib_mil.algorithms.mappo.agent_credit import AgentGAE
    from rllib_mil.data.schema import AGENT_REWARDS
    from rllib_mil.envs import INFO_AGENT_REWARDS

    algo = build(make_config("MAPPO", env="mpe/simple_reference", credit="agent"))
    learner = algo.learner_group._learner
    assert learner_module(algo).critic[-1].out_features == 2
    pieces = [type(c) for c in learner._learner_connector.connectors]
    assert AgentGAE in pieces and GeneralAdvantageEstimation not in pieces
    episodes = algo.env_runner.sample(num_timesteps=100, random_actions=True)
    want = np.concatenate([
        np.vstack([np.stack([info[INFO_AGENT_REWARDS] for info in e.get_infos()[1:]]), np.zeros((1, 2))])
        for e in episodes
    ])  # each chunk's steps + PPO's bootstrap row
    team = np.concatenate([np.append(e.get_rewards(), 0.0) for e in episodes])
    batch = learner._learner_connector(rl_module=learner.module, episodes=episodes, batch={},
                                       metrics=learner.metrics)[MODULE_ID]
    np.testing.assert_allclose(batch[AGENT_REWARDS].numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(want.mean(axis=1), team, rtol=1e-5, atol=1e-6)  # the team reward is their mean
    n_rows = len(want)
    assert batch[Postprocessing.ADVANTAGES].shape == (n_rows, 2) == batch[Postprocessing.VALUE_TARGETS].shape
    assert not torch.allclose(batch[Postprocessing.ADVANTAGES][:, 0], batch[Postprocessing.ADVANTAGES][:, 1])
    result = algo.train()
    assert math.isfinite(result["learners"][MODULE_ID]["vf_loss"])
    with pytest.raises(ValueError, match="credit"):
        make_config("MAPPO", credit="joint").validate()
