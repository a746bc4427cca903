"""Integration tests of the inverse soft-Q algorithms (MIFQ, IIQ, IQVDN) on real team envs, in-process
(num_env_runners=0). Parametrized over ``rllib_mil.algorithms.registry.INVERSE_Q``: a newly registered one is tested
by being registered (what every imitation algorithm shares: tests/test_imitation.py). One Ray instance (``ray_session``) and one demonstrations cache (``demo_cache``) serve all tests.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from rllib_mil.algorithms.masqil import MASQILConfig
from rllib_mil.algorithms.mifq import MIFQConfig, mifq_learner
from rllib_mil.algorithms.mifq.mifq import WARM_START_CHUNK
from rllib_mil.algorithms.registry import INVERSE_Q as ALGORITHMS
from rllib_mil.data.demos import DemoValidationError, collect_demos
from rllib_mil.envs import ACTION_MASK, OBS, STATE, make_team_env
from rllib_mil.evaluation import evaluate_checkpoint, load_team_module
from helpers import assert_no_unavailable_action, assert_rollouts_respect_masks, nan_loss
from rllib_mil.envs.smax import FIRST_ATTACK_ACTION

ALGO_NAMES = sorted(ALGORITHMS)
MODULE_ID = "default_policy"

SPREAD = "mpe/simple_spread"
SPEAKER_LISTENER = "mpe/simple_speaker_listener"

# Small, fast settings: 25 env steps per iteration, learning starts in iteration 2.
FRAGMENT = 25
LEARNING_STARTS = 2 * FRAGMENT
UPDATES = 2
EXPERT_BATCH = 32
TRAIN_BATCH = 64
TRAIN_ITERS = 4
SMALL_DEMOS = {"expert": "scripted", "episodes": 4, "seed": 0}

REQUIRED_LEARNER_METRICS = ("loss", "reward_term", "value_term", "q_mean", "q_abs_max", "expert_rows", "replay_rows")


def make_config(name, env=SPREAD, env_config=None, expert_data=None, **training):
    """A small, fail-fast config of the registered algorithm ``name``."""
    _, config_cls = ALGORITHMS[name]
    training = {
        "expert_data": SMALL_DEMOS if expert_data is None else expert_data,
        "num_steps_sampled_before_learning_starts": LEARNING_STARTS,
        "num_updates_per_iteration": UPDATES,
        "expert_batch_size": EXPERT_BATCH,
        "train_batch_size_per_learner": TRAIN_BATCH,
        # No warm start (its 6500 offline updates): tested on its own, test_offline_pretraining_then_online.
        "pretrain_offline_updates": 0,
        **training,
    }
    return (
        config_cls()
        .environment(env, env_config=dict(env_config or {}))
        .training(**training)
        .env_runners(num_env_runners=0, rollout_fragment_length=FRAGMENT)
        .fault_tolerance(restart_failed_env_runners=False)
    )


def learner_module(algo):
    """The learner's (full, non-inference-only) team module of a local learner group."""
    return algo.learner_group._learner.module[MODULE_ID]


def env_runner_module(algo):
    """The local env runner's (inference-only) team module."""
    m = algo.env_runner.module
    return m[MODULE_ID] if hasattr(m, "keys") else m


def learner_weights(algo):
    """Learner-side module state (Q net, target net, mixers) as numpy arrays."""
    return algo.learner_group.get_weights()[MODULE_ID]


def team_obs_batch(env_id, n=48, seed=0, env_config=None):
    """A batch of real team observations (random-action rollouts) in the module's input format."""
    env = make_team_env(env_id, env_config)
    env.action_space.seed(seed)
    rows = []
    obs, _ = env.reset(seed=seed)
    while len(rows) < n:
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return {Columns.OBS: {k: torch.as_tensor(np.stack([r[k] for r in rows])) for k in rows[0]}}


def assert_state_equal(a, b):
    assert set(a) == set(b), (sorted(a), sorted(b))
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def state_differs(a, b):
    return any(not np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", params=ALGO_NAMES)
def trained(request, ray_session):
    """One algorithm per registered name, built on simple_spread and trained TRAIN_ITERS iterations (learning
    starts in the 2nd). Shared by the tests below that only read it."""
    name = request.param
    algo = make_config(name).build_algo()
    try:
        initial = {k: np.array(v, copy=True) for k, v in learner_weights(algo).items()}
        results = [algo.train() for _ in range(TRAIN_ITERS)]
        yield SimpleNamespace(name=name, algo=algo, initial=initial, results=results)
    finally:
        algo.stop()


# ------------------------------------------------------------------------------------------------ training
def test_trains_and_reports_learner_metrics(trained):
    first, last = trained.results[0], trained.results[-1]
    # Learning starts only once `num_steps_sampled_before_learning_starts` env steps were sampled.
    assert first["num_env_steps_sampled_lifetime"] == FRAGMENT
    assert MODULE_ID not in first.get("learners", {}), "learner updated before learning starts"
    assert last["training_iteration"] == TRAIN_ITERS
    assert last["num_env_steps_sampled_lifetime"] == TRAIN_ITERS * FRAGMENT

    stats = last["learners"][MODULE_ID]
    for key in REQUIRED_LEARNER_METRICS:
        assert key in stats, f"learner metric {key!r} missing; got {sorted(stats)}"
        assert math.isfinite(float(stats[key])), (key, stats[key])
    assert float(stats["expert_rows"]) == EXPERT_BATCH
    # The default is online: the replay rows the env runners filled enter the loss (value term and chi^2).
    assert float(stats["replay_rows"]) == TRAIN_BATCH
    assert float(stats["replay_rows_sampled"]) == TRAIN_BATCH
    for key in ("value_term_expert", "value_term_replay", "chi2_term_expert", "chi2_term_replay"):
        assert math.isfinite(float(stats[key])), (key, stats.get(key))
    assert float(stats["q_abs_max"]) >= abs(float(stats["q_mean"])) - 1e-6
    # num_updates_per_iteration updates of train_batch_size_per_learner replay rows in each learning iteration.
    learning_iters = TRAIN_ITERS - LEARNING_STARTS // FRAGMENT + 1
    assert float(stats["num_module_steps_trained_lifetime"]) == learning_iters * UPDATES * TRAIN_BATCH

    # The updates really changed the Q network.
    now = learner_weights(trained.algo)
    q_keys = [k for k in now if k.startswith("q_net.")]
    assert q_keys, sorted(now)
    assert state_differs({k: now[k] for k in q_keys}, {k: trained.initial[k] for k in q_keys})


def test_env_runner_module_is_inference_only_and_synced(trained):
    algo = trained.algo
    er_module = algo.env_runner.module
    er_module = er_module[MODULE_ID] if hasattr(er_module, "keys") else er_module
    full = learner_module(algo)

    assert er_module.inference_only
    assert not full.inference_only
    # Mixers and the target network live on the learner only.
    # (IIQ has no mixers at all: its `v_mixer` / `r_mixer` are None on both sides.)
    mixer = algo.config.mixer
    for attr in ("v_mixer", "r_mixer", "_target_q_net"):
        assert getattr(er_module, attr, None) is None, f"env-runner module carries {attr}"
        if attr == "_target_q_net" or mixer != "none":
            assert isinstance(getattr(full, attr, None), torch.nn.Module), f"learner module lacks {attr}"
    if trained.name == "MIFQ":
        assert mixer == "mifq"
        assert not hasattr(er_module, "v_mixer")
        # The state-conditioned mixers have parameters of their own, none of them on the env runner.
        assert any(True for _ in full.v_mixer.parameters())
    er_names = {n for n, _ in er_module.named_parameters()}
    assert er_names and all(n.startswith("q_net.") for n in er_names), sorted(er_names)

    # After training, the env runner acts with the learner's current Q network.
    learner_q = {k: v for k, v in learner_weights(algo).items() if k.startswith("q_net.")}
    er_q = {k: v.detach().cpu().numpy() for k, v in er_module.state_dict().items()}
    assert_state_equal(er_q, learner_q)


# ------------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("name", ALGO_NAMES)
def test_rollouts_respect_action_masks(name, build):
    """simple_speaker_listener with a near-uniform rollout temperature (see assert_rollouts_respect_masks)."""
    algo = build(make_config(name, env=SPEAKER_LISTENER, rollout_alpha=1000.0))
    assert_rollouts_respect_masks(algo.env_runner.sample(num_timesteps=200, explore=True))


@pytest.mark.parametrize("name", ALGO_NAMES)
def test_trains_on_smax_with_win_rate(name, build):
    """SMAX (state-dependent masks: attack targets in range, dead allies): rollouts stay inside the masks, the
    learner trains on replay rows, and training and greedy evaluation report a win rate."""
    algo = build(
        make_config(name, env="smax/3m", rollout_alpha=1000.0)
        .evaluation(evaluation_interval=1, evaluation_duration=2, evaluation_duration_unit="episodes")
    )
    steps, chosen, _ = assert_no_unavailable_action(algo.env_runner.sample(num_timesteps=300, explore=True))
    # near-uniform rollouts met enemies in range: attack actions (available only then) were taken, never outside
    assert steps >= 300 and any(max(c) >= FIRST_ATTACK_ACTION for c in chosen.values()), chosen
    results = [algo.train() for _ in range(3)]
    stats = results[-1]["learners"][MODULE_ID]
    assert float(stats["replay_rows"]) == TRAIN_BATCH and math.isfinite(float(stats["loss"]))
    win_rates = [r["env_runners"].get("win_rate") for r in results] + [results[-1]["evaluation"]["env_runners"]["win_rate"]]
    assert any(w is not None for w in win_rates[:-1]) and 0.0 <= win_rates[-1] <= 1.0


@pytest.mark.parametrize("name", ALGO_NAMES)
def test_recurrent_agents_train_on_whole_episodes(name, build, tmp_path):
    """use_gru: the env runners carry one GRU state per agent, updates train on whole expert and replay episodes
    (rows counted over their real steps), and a checkpoint evaluates greedily with its recurrent state."""
    algo = build(
        make_config(name, env="smax/3m", use_gru=True, hidden=[32], gru_hidden=16, expert_batch_size=3,
                    train_batch_size_per_learner=2, rollout_alpha=1000.0)
        .evaluation(evaluation_interval=1, evaluation_duration=2, evaluation_duration_unit="episodes")
    )
    module = algo.env_runner.module
    module = module[MODULE_ID] if hasattr(module, "keys") else module
    assert module.is_stateful() and module.get_initial_state()["h"].shape == (3, 16)
    steps, _, _ = assert_no_unavailable_action(algo.env_runner.sample(num_timesteps=100, explore=True))
    assert steps >= 100
    results = [algo.train() for _ in range(3)]
    stats = results[-1]["learners"][MODULE_ID]
    # 3 expert and 2 replay episodes per update: their real steps are the rows (SMAX episodes last 3+ steps).
    assert float(stats["expert_rows"]) >= 3 * 3 and float(stats["replay_rows"]) >= 2 * 3
    assert float(stats["replay_rows"]) == float(stats["replay_rows_sampled"])
    assert math.isfinite(float(stats["loss"])) and "win_rate" in results[-1]["evaluation"]["env_runners"]
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    res = evaluate_checkpoint(path, episodes=2)
    assert res["episodes"] == 2 and 0.0 <= res["win_rate"] <= 1.0


def test_offline_pretraining_then_online(build):
    """pretrain_offline_updates (the warm start, on by default): expert-only updates without sampling first, in
    chunks of at least WARM_START_CHUNK per iteration whatever num_updates_per_iteration says, then the online loop."""
    assert MIFQConfig().pretrain_offline_updates > 0 and MASQILConfig().pretrain_offline_updates == 0
    n = WARM_START_CHUNK + 3
    algo = build(make_config("MIFQ", pretrain_offline_updates=n))
    first, second, third = (algo.train() for _ in range(3))
    assert first["num_offline_updates_lifetime"] == WARM_START_CHUNK  # not UPDATES
    assert second["num_offline_updates_lifetime"] == n  # the rest
    for r in (first, second):
        assert r["num_env_steps_sampled_lifetime"] == 0
        assert float(r["learners"][MODULE_ID]["replay_rows"]) == 0.0
    assert algo._n_offline_updates == n
    assert third["num_env_steps_sampled_lifetime"] == FRAGMENT  # then sampling starts
    assert third["num_offline_updates_lifetime"] == n
    with pytest.raises(ValueError, match="pretrain_offline_updates"):
        make_config("MIFQ", pretrain_offline_updates=-1).validate()


def test_recurrent_offline_mode(build):
    algo = build(make_config("MIFQ", use_gru=True, hidden=[32], gru_hidden=16, expert_batch_size=2, offline=True))
    result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert float(stats["expert_rows"]) == 2 * 25 and float(stats["replay_rows"]) == 0.0
    assert result["num_env_steps_sampled_lifetime"] == 0


# ------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(trained, tmp_path):
    algo = trained.algo
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)

    restored = Algorithm.from_checkpoint(path)
    try:
        assert type(restored) is type(algo)
        assert restored.config.mixer == algo.config.mixer
        # Full learner state (Q net, target net, mixers) restored exactly.
        assert_state_equal(learner_weights(restored), learner_weights(algo))

        batch = team_obs_batch(SPREAD)
        modules = {
            "original env runner": algo.env_runner.module,
            "restored env runner": restored.env_runner.module,
            "restored learner": learner_module(restored),
            "evaluation loader": load_team_module(path)[0],
        }
        with torch.no_grad():
            ref_actions = learner_module(algo).forward_inference(batch)[Columns.ACTIONS]
            inputs = learner_module(algo).agent_inputs(batch[Columns.OBS][OBS], batch[Columns.OBS][STATE])
            ref_q = learner_module(algo).q_values(inputs)
            assert ref_actions.shape == batch[Columns.OBS][ACTION_MASK].shape[:2]
            for what, module in modules.items():
                module.eval()
                actions = module.forward_inference(batch)[Columns.ACTIONS]
                assert torch.equal(actions, ref_actions), f"greedy actions differ: {what}"
                assert torch.equal(module.q_values(inputs), ref_q), f"Q values differ: {what}"

        # The restored algorithm keeps training.
        result = restored.train()
        assert result["training_iteration"] == TRAIN_ITERS + 1
        assert math.isfinite(float(result["learners"][MODULE_ID]["loss"]))
    finally:
        restored.stop()

    res = evaluate_checkpoint(path, episodes=2)
    assert res["episodes"] == 2 and res["env"] == SPREAD
    assert math.isfinite(res["return_mean"]) and res["return_mean"] < 0.0  # MPE spread costs are negative


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", ALGO_NAMES)
def test_missing_expert_data_fails_validation(name):
    _, config_cls = ALGORITHMS[name]
    config = config_cls().environment(SPREAD)
    with pytest.raises(ValueError, match="expert_data"):
        config.validate()
    # Positive control: the same config with demonstrations validates.
    config_cls().environment(SPREAD).training(expert_data=SMALL_DEMOS).validate()


@pytest.fixture(scope="module")
def spread_n3_demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "spread_n3.parquet"
    return collect_demos(SPREAD, {"N": 3}, "scripted", 2, 0, path)


@pytest.mark.parametrize("name", ALGO_NAMES)
@pytest.mark.parametrize(
    "env,env_config,expected",
    [
        (SPREAD, {"N": 4}, ["n_agents=3", "n_agents=4"]),
        ("mpe/simple_reference", {}, ["'mpe/simple_spread'", "'mpe/simple_reference'"]),
    ],
    ids=["spread-N4", "reference"],
)
def test_mismatched_demos_fail_at_build(name, env, env_config, expected, spread_n3_demos, build):
    config = make_config(name, env=env, env_config=env_config, expert_data=spread_n3_demos)
    with pytest.raises(DemoValidationError) as info:
        build(config)
    msg = str(info.value)
    for part in expected:
        assert part in msg, msg
    assert spread_n3_demos in msg
    assert "demos collect" in msg  # tells how to fix it


def test_mismatched_demos_fail_on_driver_with_remote_learner(spread_n3_demos, build):
    """With a remote learner the mismatch must still surface as the plain DemoValidationError, raised on the
    driver before any actor starts (not as an actor-creation error from inside the learner)."""
    config = make_config("MIFQ", env_config={"N": 4}, expert_data=spread_n3_demos).learners(num_learners=1)
    with pytest.raises(DemoValidationError) as info:
        build(config)
    assert type(info.value) is DemoValidationError, type(info.value)
    assert "n_agents=3" in str(info.value) and "n_agents=4" in str(info.value)


def test_non_finite_loss_raises(build, monkeypatch):
    algo = build(make_config("MIFQ"))
    monkeypatch.setattr(mifq_learner, "mifq_loss", nan_loss(mifq_learner.mifq_loss))
    with pytest.raises(FloatingPointError, match="not finite") as info:
        for _ in range(LEARNING_STARTS // FRAGMENT + 1):
            algo.train()
    msg = str(info.value)
    assert "nan" in msg.lower()
    assert "lr" in msg and "alpha" in msg  # says what to change


@pytest.mark.parametrize("name", ALGO_NAMES)
def test_optional_terms_train(name, build):
    """The optional terms (BC at its own temperature, gradient penalty, online V(S') in the value term) run end to
    end on every registered imitation algorithm and are logged."""
    algo = build(make_config(name, bc_coef=0.1, bc_temperature=1.0, grad_penalty=1.0, value_next="online"))
    for _ in range(TRAIN_ITERS):
        result = algo.train()
    stats = result["learners"][MODULE_ID]
    for key in ("loss", "reward_term", "value_term", "replay_reward_mean", "bc_term", "grad_penalty"):
        assert math.isfinite(float(stats[key])), (key, stats.get(key))
    assert float(stats["bc_term"]) > 0 and float(stats["grad_penalty"]) >= 0


@pytest.mark.parametrize("value_rows,chi2_replay,replay_rows", [
    ("expert", False, 0), ("expert", True, TRAIN_BATCH), ("replay", False, TRAIN_BATCH), ("all", True, TRAIN_BATCH),
    ("expert", "state", TRAIN_BATCH),
])
def test_rows_in_the_loss_follow_the_config(value_rows, chi2_replay, replay_rows, build):
    """`replay_rows` says how many replay rows entered the loss; each kind of row reports its own terms."""
    algo = build(make_config("MIFQ", value_rows=value_rows, chi2_replay=chi2_replay))
    for _ in range(LEARNING_STARTS // FRAGMENT + 1):
        result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert float(stats["replay_rows"]) == replay_rows
    assert float(stats["expert_rows"]) == EXPERT_BATCH
    assert ("value_term_replay" in stats) == (value_rows != "expert")
    assert ("value_term_expert" in stats) == (value_rows != "replay")
    assert ("chi2_term_replay" in stats) == bool(chi2_replay)


@pytest.mark.parametrize("name", ALGO_NAMES)
def test_offline_mode_samples_nothing_and_has_no_replay_buffer(name, build):
    """offline=True: learner updates on expert rows only; no env step sampled for training, no replay buffer;
    the env runners only evaluate."""
    algo = build(
        make_config(name, offline=True, value_rows="all", chi2_replay=True).evaluation(
            evaluation_interval=2, evaluation_duration=1, evaluation_duration_unit="episodes"
        )
    )
    assert algo.local_replay_buffer is None
    before = {k: np.array(v, copy=True) for k, v in learner_weights(algo).items()}
    results = [algo.train() for _ in range(2)]
    last = results[-1]
    assert last.get("num_env_steps_sampled_lifetime", 0) == 0
    assert last.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0) == 0
    stats = last["learners"][MODULE_ID]
    assert float(stats["replay_rows"]) == 0 and float(stats["replay_rows_sampled"]) == 0
    assert float(stats["expert_rows"]) == EXPERT_BATCH
    assert "value_term_replay" not in stats and "chi2_term_replay" not in stats
    # Learning starts at once (no warm-up to wait for) and changes the Q net.
    assert float(stats["num_module_steps_trained_lifetime"]) == 2 * UPDATES
    assert state_differs(learner_weights(algo), before)
    # The env runner's (inference-only) Q net is the trained one.
    er_module = algo.env_runner.module
    er_module = er_module[MODULE_ID] if hasattr(er_module, "keys") else er_module
    learner_q = {k: v for k, v in learner_weights(algo).items() if k.startswith("q_net.")}
    assert_state_equal({k: v.detach().numpy() for k, v in er_module.state_dict().items() if k.startswith("q_net.")},
                       learner_q)
    # Greedy evaluation still runs on the env runners (a full 25-step episode).
    assert last["evaluation"]["env_runners"]["num_episodes"] >= 1


@pytest.mark.parametrize("settings,match", [({"value_rows": "bogus"}, "value_rows"),
                                            ({"value_next": "lagged"}, "value_next"),
                                            ({"offline": "yes"}, "offline"),
                                            ({"bc_coef": -1}, "bc_coef"),
                                            ({"bc_temperature": 0}, "bc_temperature"),
                                            ({"grad_penalty": "big"}, "grad_penalty"),
                                            ({"chi2_replay": "yes"}, "chi2_replay"),
                                            ({"mixer_shared": 1}, "mixer_shared"),
                                            ({"mixer_lr": 0}, "mixer_lr"),
                                            ({"replay_is_weights": True, "chi2_replay": False}, "replay_is"),
                                            ({"replay_is_clip": 0}, "replay_is_clip"),
                                            ({"mixer_lr": 1e-3, "mixer": "none"}, "mixer_lr"),
                                            ({"policy_prior": "dagger"}, "policy_prior"),
                                            ({"prior_weight": 0}, "prior_weight"),
                                            ({"prior_net": "own"}, "prior_net"),
                                            ({"prior_net": "separate", "policy_prior": None}, "prior_net"),
                                            ({"prior_net": "separate", "use_gru": True}, "prior_net"),
                                            ({"prior_training": "never"}, "prior_training"),
                                            ({"prior_training": "warm_start", "pretrain_offline_updates": 10},
                                             "prior_training"),
                                            ({"prior_training": "warm_start", "prior_net": "separate",
                                              "pretrain_offline_updates": 0}, "prior_training"),
                                            ({"prior_training": "warm_start", "prior_net": "separate",
                                              "pretrain_offline_updates": 10, "offline": True}, "prior_training")])
def test_bad_iq_options_fail_validation(settings, match):
    _, config_cls = ALGORITHMS["MIFQ"]
    with pytest.raises(ValueError, match=match):
        config_cls().environment(SPREAD).training(expert_data=SMALL_DEMOS, **settings).validate()


def test_replay_rows_carry_the_behaviour_logp_for_importance_weights(build):
    """replay_is_weights: the env runners store log μ_i(a_i|o_i) of each sampled action; before any update μ is
    the learner's own softmax(Q_i/α), each replay row carries its own step's value (RLlib's one-step episode draws
    copy the first step's), and the weighted χ² runs and logs its mean weight."""
    import torch
    from rllib_mil.modules.soft import action_logp
    from rllib_mil.modules.team_module import BEHAVIOUR_LOGP

    algo = build(make_config("MIFQ", replay_is_weights=True, num_steps_sampled_before_learning_starts=10_000))
    algo.train()
    rows = algo.local_replay_buffer.sample_transitions(32)
    obs = rows[Columns.OBS]
    module = learner_module(algo)
    # The policy's scores: Q plus the scaled log-prior (policy_prior="bc", the default).
    q = module.action_scores(module.q_values(module.agent_inputs(torch.as_tensor(obs[OBS]),
                                                                 torch.as_tensor(obs[STATE])))).detach()
    want = action_logp(q, torch.as_tensor(obs[ACTION_MASK]), algo.config.alpha, torch.as_tensor(rows[Columns.ACTIONS]))
    np.testing.assert_allclose(rows[BEHAVIOUR_LOGP], want.numpy(), rtol=1e-4, atol=1e-5)
    assert len(np.unique(rows[BEHAVIOUR_LOGP][:, 0])) > 1
    algo.config._is_frozen = False
    algo.config.num_steps_sampled_before_learning_starts = 0
    result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert 0 < float(stats["replay_is_weight_mean"]) <= algo.config.replay_is_clip
    assert float(stats["replay_rows"]) == TRAIN_BATCH


@pytest.mark.parametrize("shared", [True, False])
def test_mixer_lr_gives_the_mixers_their_own_optimizer(shared, build):
    """`mixer_lr` (Algorithm 1's lambda_omega): the mixers' parameters, and only they, train under their own Adam at
    that learning rate; the Q network keeps `lr`; both change in an update."""
    algo = build(make_config("MIFQ", mixer_lr=3e-3, lr=1e-4, mixer_shared=shared))
    learner = algo.learner_group._learner
    full = learner_module(algo)
    opts = dict(learner.get_optimizers_for_module(MODULE_ID))
    assert set(opts) == {"default_optimizer", "mixer"}
    mixer_ids = {id(p) for m in (full.v_mixer, full.r_mixer) for p in m.parameters()}
    in_opt = {name: {id(p) for g in o.param_groups for p in g["params"]} for name, o in opts.items()}
    assert in_opt["mixer"] == mixer_ids and not (in_opt["default_optimizer"] & mixer_ids)
    assert opts["mixer"].param_groups[0]["lr"] == pytest.approx(3e-3)
    assert opts["default_optimizer"].param_groups[0]["lr"] == pytest.approx(1e-4)
    before = learner_weights(algo)
    before = {k: np.array(v, copy=True) for k, v in before.items()}
    for _ in range(LEARNING_STARTS // FRAGMENT + 1):
        algo.train()
    after = learner_weights(algo)
    assert state_differs({k: v for k, v in after.items() if "mixer" in k}, {k: v for k, v in before.items() if "mixer" in k})
    assert state_differs({k: v for k, v in after.items() if k.startswith("q_net.")},
                         {k: v for k, v in before.items() if k.startswith("q_net.")})


@pytest.mark.parametrize("shared", [True, False])
def test_mifq_mixer_shared_or_paper_pair(shared, build):
    """Default: one state-conditioned mixer serves R^tot and V^tot (README deviation 2); False = the paper's pair
    (psi_R, psi_V). Both keep the mixers on the learner only and survive a weights round trip."""
    algo = build(make_config("MIFQ", mixer_shared=shared))
    full = learner_module(algo)
    assert (full.r_mixer is full.v_mixer) == shared
    n_mixer_params = sum(p.numel() for p in full.v_mixer.parameters())
    n_all = sum(p.numel() for p in full.parameters())  # shared parameters are counted once
    n_q = 2 * sum(p.numel() for p in full.q_net.parameters())  # online + target Q net
    assert n_all == n_q + (1 if shared else 2) * n_mixer_params
    weights = learner_weights(algo)
    algo.learner_group.set_weights({MODULE_ID: weights})
    assert_state_equal(learner_weights(algo), weights)
    assert MIFQConfig().mixer_shared is True


def test_separate_prior_net_shares_no_weights_with_q(build):
    """prior_net="separate": the prior's logits come from their own tower, so Q does not move when that tower's
    weights change, the prior's NLL falls as it trains, and acting reads Q + α·β·log π0 as with the shared head."""
    from rllib_mil.modules.agent_nets import TwoTowerAgentNet
    from rllib_mil.modules.soft import greedy_actions

    algo = build(make_config("MIFQ", prior_net="separate", lr=3e-3))
    module = learner_module(algo)
    n_actions = module.n_actions
    assert isinstance(module.q_net, TwoTowerAgentNet) and isinstance(env_runner_module(algo).q_net, TwoTowerAgentNet)
    assert not {id(p) for p in module.q_net.first.parameters()} & {id(p) for p in module.q_net.second.parameters()}
    results = [algo.train() for _ in range(TRAIN_ITERS + 2)]
    stats = [r["learners"][MODULE_ID] for r in results if "prior_nll" in r.get("learners", {}).get(MODULE_ID, {})]
    assert len(stats) >= 2 and float(stats[-1]["prior_nll"]) < float(stats[0]["prior_nll"])
    batch = team_obs_batch(SPREAD, n=32)
    obs = module.agent_inputs(batch[Columns.OBS][OBS], batch[Columns.OBS][STATE])
    out = module.q_net(obs).detach()  # (B, n, 2A)
    with torch.no_grad():
        for p in module.q_net.second.parameters():
            p.add_(1.0)
    moved = module.q_net(obs).detach()
    torch.testing.assert_close(moved[..., :n_actions], out[..., :n_actions])  # Q: the first tower only
    assert not torch.allclose(moved[..., n_actions:], out[..., n_actions:])
    q, logits = moved[..., :n_actions], moved[..., n_actions:]
    want = greedy_actions(q + module.prior_scale * torch.log_softmax(logits, dim=-1), batch[Columns.OBS][ACTION_MASK])
    torch.testing.assert_close(module.forward_inference(batch)[Columns.ACTIONS], want)


def test_prior_training_warm_start_fixes_the_prior_after_the_warm_start(build):
    """prior_training="warm_start": the separate prior tower trains in the warm start's expert-only updates and not
    in the online updates after it (replay rows in the loss), while the Q tower keeps training; the prior's NLL is
    still logged. The default trains it always."""
    assert MIFQConfig().prior_training == "always"
    algo = build(make_config("MIFQ", prior_net="separate", prior_training="warm_start", pretrain_offline_updates=20,
                             lr=3e-3))

    def towers():
        w = learner_weights(algo)
        return ({k: np.array(v, copy=True) for k, v in w.items() if k.startswith("q_net.second.")},
                {k: np.array(v, copy=True) for k, v in w.items() if k.startswith("q_net.first.")})

    prior0, _ = towers()
    assert prior0
    warm = algo.train()
    assert warm["num_offline_updates_lifetime"] == 20 and warm["num_env_steps_sampled_lifetime"] == 0
    prior1, q1 = towers()
    assert state_differs(prior1, prior0)  # trained in the warm start
    online = [algo.train() for _ in range(LEARNING_STARTS // FRAGMENT + 2)]
    stats = online[-1]["learners"][MODULE_ID]
    assert float(stats["replay_rows"]) == TRAIN_BATCH and np.isfinite(float(stats["prior_nll"]))
    prior2, q2 = towers()
    assert_state_equal(prior2, prior1)  # fixed in the online updates
    assert state_differs(q2, q1)


@pytest.mark.parametrize("name", ALGO_NAMES)
def test_policy_prior_acts_on_q_plus_scaled_prior_and_trains_its_head(name, build):
    """policy_prior="bc": the shared net has a Q head and a BC-logits head; env runners act greedily on
    Q + α·β·log π0; the learner logs the prior's NLL on expert rows, which falls as it trains, and replay rows
    still enter the loss."""
    from rllib_mil.modules.soft import greedy_actions

    algo = build(make_config(name, policy_prior="bc", prior_weight=0.5, lr=3e-3))
    module = learner_module(algo)
    n_actions = module.n_actions
    assert module.q_net.n_actions == 2 * n_actions and module.prior_scale == pytest.approx(0.5 * algo.config.alpha)
    results = [algo.train() for _ in range(TRAIN_ITERS + 2)]
    stats = [r["learners"][MODULE_ID] for r in results if "prior_nll" in r.get("learners", {}).get(MODULE_ID, {})]
    assert len(stats) >= 2 and float(stats[-1]["replay_rows"]) == TRAIN_BATCH
    assert float(stats[-1]["prior_nll"]) < float(stats[0]["prior_nll"])
    batch = team_obs_batch(SPREAD, n=32)
    out = module.q_net(module.agent_inputs(batch[Columns.OBS][OBS], batch[Columns.OBS][STATE])).detach()  # (B, n, 2A)
    q, logits = out[..., :n_actions], out[..., n_actions:]
    want = greedy_actions(q + module.prior_scale * torch.log_softmax(logits, dim=-1), batch[Columns.OBS][ACTION_MASK])
    got = module.forward_inference(batch)[Columns.ACTIONS]
    torch.testing.assert_close(got, want)
