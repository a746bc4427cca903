"""What every registered imitation algorithm (``registry.IMITATION``: MIFQ, IIQ, IQVDN, BC, MASQIL, MAGAIL) must do,
in-process: learn (from the demonstrations alone where the method can, ``offline_capable``; MASQIL needs its own
rollouts, MAGAIL its MAPPO epochs) with the expert rows in the metrics, evaluate greedily, save a checkpoint that ``rllib evaluate`` runs,
train recurrent agents on whole episodes, and refuse a config without demonstrations. BC's and MASQIL's own
behaviour follows at the end; MAGAIL's in tests/test_magail.py."""
import math

import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from rllib_mil.algorithms.bc import BC, BCConfig
from rllib_mil.algorithms.registry import IMITATION
from rllib_mil.evaluation import evaluate_checkpoint

NAMES = sorted(IMITATION)
MODULE_ID = "default_policy"
DEMOS = {"expert": "scripted", "episodes": 4, "seed": 0}


def online_settings(config_cls):
    """Smallest online training for algorithms that need their own rollouts: MAGAIL runs MAPPO's epochs over a
    50-step batch; MASQIL learns from the 2nd iteration (25 env steps per iteration) on 32 replay rows."""
    if issubclass(config_cls, PPOConfig):
        return {"train_batch_size_per_learner": 50, "minibatch_size": 25, "num_epochs": 2}
    return {"num_steps_sampled_before_learning_starts": 25, "train_batch_size_per_learner": 32}


def offline_config(name, env="mpe/simple_speaker_listener", **training):
    """Offline where the algorithm can learn from the demonstrations alone, else online (``online_settings``)."""
    _, config_cls = IMITATION[name]
    mode = {"offline": True} if config_cls.offline_capable else online_settings(config_cls)
    return (
        config_cls()
        .environment(env)
        .training(**{"expert_data": DEMOS, "expert_batch_size": 32, "num_updates_per_iteration": 5, **mode,
                     **training})
        .env_runners(num_env_runners=0, rollout_fragment_length=25)
        .evaluation(evaluation_interval=1, evaluation_duration=2, evaluation_duration_unit="episodes")
        .fault_tolerance(restart_failed_env_runners=False)
        .debugging(seed=0)
    )


@pytest.mark.parametrize("name", NAMES)
def test_learns_offline_evaluates_and_checkpoints(name, build, tmp_path):
    algo = build(offline_config(name))
    results = [algo.train() for _ in range(2)]
    last = results[-1]
    if algo.config.offline:
        assert last.get("num_env_steps_sampled_lifetime", 0) == 0  # nothing sampled for training
        assert algo.local_replay_buffer is None
    stats = last["learners"][MODULE_ID]
    assert float(stats["expert_rows"]) == 32 and math.isfinite(float(stats["loss"]))
    assert math.isfinite(last["evaluation"]["env_runners"]["episode_return_mean"])
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    restored = Algorithm.from_checkpoint(path)
    try:
        assert type(restored) is type(algo) and restored.train()["training_iteration"] == 3
    finally:
        restored.stop()
    res = evaluate_checkpoint(path, episodes=2)
    assert res["episodes"] == 2 and math.isfinite(res["return_mean"])


@pytest.mark.parametrize("name", NAMES)
def test_recurrent_agents_offline_on_smax(name, build):
    # expert_batch_size and MIFQ's replay batch count whole episodes here; MAGAIL's batch counts env steps.
    replay = {} if issubclass(IMITATION[name][1], PPOConfig) else {"train_batch_size_per_learner": 2}
    algo = build(offline_config(name, env="smax/3m", use_gru=True, hidden=[32], gru_hidden=16, expert_batch_size=2,
                                **replay))
    result = [algo.train() for _ in range(2)][-1]
    stats = result["learners"][MODULE_ID]
    assert float(stats["expert_rows"]) >= 2 * 3  # the real steps of 2 whole episodes
    assert 0.0 <= result["evaluation"]["env_runners"]["win_rate"] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_missing_expert_data_names_the_fix(name):
    _, config_cls = IMITATION[name]
    with pytest.raises(ValueError, match=r"`expert_data` is not set.*rllib demos collect"):
        config_cls().environment("mpe/simple_spread").validate()


@pytest.mark.parametrize("name", NAMES)
def test_expert_data_paths_are_made_absolute(name, tmp_path, monkeypatch):
    """Tune runs each trial in its own directory: a relative demonstrations path (or checkpoint expert) is fixed to
    where the config was made, by training() and by update_from_dict (YAML, --config, Tune's dict round trip)."""
    _, config_cls = IMITATION[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNE_ORIG_WORKING_DIR", raising=False)
    assert config_cls().training(expert_data="demos/a.parquet").expert_data == str(tmp_path / "demos" / "a.parquet")
    config = config_cls().update_from_dict({"expert_data": {"expert": "ckpt/x", "episodes": 8}})
    assert config.expert_data == {"expert": str(tmp_path / "ckpt" / "x"), "episodes": 8}
    assert config_cls().training(expert_data=DEMOS).expert_data == DEMOS  # expert names stay names
    # Inside a trial the working directory is the trial's; Tune keeps the user's in TUNE_ORIG_WORKING_DIR.
    monkeypatch.setenv("TUNE_ORIG_WORKING_DIR", "/home/user/project")
    assert config_cls().update_from_dict({"expert_data": "d.parquet"}).expert_data == "/home/user/project/d.parquet"
    assert config_cls().training(expert_data="/abs/d.parquet").expert_data == "/abs/d.parquet"


# ------------------------------------------------------------------------------------------------ BC
def test_bc_fits_the_expert_actions(build):
    algo = build(offline_config("BC", env="mpe/simple_spread").training(expert_batch_size=128,
                                                                         num_updates_per_iteration=100))
    first = algo.train()["learners"][MODULE_ID]
    for _ in range(3):
        last = algo.train()["learners"][MODULE_ID]
    # the scripted spread expert is decentralized and deterministic: BC recovers most of its actions
    assert float(last["bc_nll"]) < float(first["bc_nll"]) and float(last["expert_accuracy"]) > 0.7


def test_bc_is_offline_only_and_asks_for_one_cpu():
    config = BCConfig().environment("mpe/simple_spread").training(expert_data=DEMOS)
    config.validate()
    bundles = BC.default_resource_request(config).bundles
    assert sum(b.get("CPU", 0) for b in bundles) == 1  # the learner / driver alone: no env-runner CPUs
    with pytest.raises(ValueError, match="`offline` must be True"):
        BCConfig().environment("mpe/simple_spread").training(expert_data=DEMOS, offline=False).validate()


# ------------------------------------------------------------------------------------------------ MASQIL
def test_masqil_rewards_expert_rows_and_refuses_offline(build):
    algo = build(offline_config("MASQIL", env="mpe/simple_spread", num_updates_per_iteration=50))
    for _ in range(6):
        stats = algo.train()["learners"][MODULE_ID]
    assert float(stats["expert_rows"]) == 32 and float(stats["replay_rows"]) == 32  # balanced batches
    # reward 1 on expert rows, 0 on replay rows: the mixed Q of expert transitions pulls ahead
    assert float(stats["q_tot_expert"]) > float(stats["q_tot_replay"]) + 0.1, stats
    module = algo.learner_group._learner.module[MODULE_ID].unwrapped()
    assert len(module.get_target_network_pairs()) == 2  # target Q net and target mixer
    for bad, match in (({"offline": True}, "cannot run offline"), ({"value_rows": "expert"}, "does not use"),
                       ({"mixer": "none"}, "mixer")):
        with pytest.raises(ValueError, match=match):
            offline_config("MASQIL").training(**bad).validate()


def test_soft_td_loss_by_hand():
    import torch

    from rllib_mil.algorithms.masqil.masqil_loss import soft_td_loss

    q_tot = torch.tensor([1.0, 0.5, -0.2], requires_grad=True)
    v_next = torch.tensor([2.0, 1.0, 3.0])
    reward = torch.tensor([1.0, 0.0, 0.0])
    done = torch.tensor([0.0, 1.0, 0.0])
    loss, terms = soft_td_loss(q_tot, v_next, reward, done, gamma=0.5)
    target = [1 + 0.5 * 2.0, 0.0, 0.5 * 3.0]
    expected = sum((q - t) ** 2 for q, t in zip([1.0, 0.5, -0.2], target)) / 3
    assert float(loss) == pytest.approx(expected)
    loss.backward()
    assert torch.allclose(q_tot.grad, 2 * (q_tot.detach() - torch.tensor(target)) / 3)
    with pytest.raises(ValueError, match="shape"):
        soft_td_loss(q_tot, v_next[:2], reward, done, 0.5)


# ------------------------------------------------------------------------------------------------ resuming
def test_checkpoint_carries_replay_buffer_expert_sampler_and_counters(build, tmp_path):
    """A restored MIFQ run continues on the same data: the replay buffer (RLlib's new stack saves none), the
    expert sampler's RNG, the counters; its first update after the restore already uses replay rows."""
    config = offline_config("MIFQ", env="mpe/simple_spread").training(
        offline=False, num_steps_sampled_before_learning_starts=50, train_batch_size_per_learner=32,
        pretrain_offline_updates=0)
    algo = build(config)
    for _ in range(4):
        algo.train()
    algo.save_to_path(str(tmp_path / "ckpt"))
    buf, learner = algo.local_replay_buffer, algo.learner_group._learner
    restored = build(config.copy())
    restored.restore_from_path(str(tmp_path / "ckpt"))
    rbuf, rlearner = restored.local_replay_buffer, restored.learner_group._learner
    assert rbuf.get_num_timesteps() == buf.get_num_timesteps() > 0
    assert rbuf.get_num_episodes() == buf.get_num_episodes()
    assert torch.equal(rlearner._expert_gen.get_state(), learner._expert_gen.get_state())
    # the next expert rows drawn are the same ones the original run would draw, and so are the next replay rows
    assert torch.equal(rlearner.expert_rows(8)["actions"], learner.expert_rows(8)["actions"])
    assert rbuf.rng.bit_generator.state == buf.rng.bit_generator.state
    assert rbuf.rng.integers(1 << 30, size=4).tolist() == buf.rng.integers(1 << 30, size=4).tolist()
    result = restored.train()
    assert result["training_iteration"] == 5
    assert float(result["learners"][MODULE_ID]["replay_rows_sampled"]) == 32  # no warm-up again
    off = build(config.copy().training(checkpoint_replay_buffer=False))
    off.restore_from_path(str(tmp_path / "ckpt"))  # a checkpoint with a buffer restores into one that keeps none
    assert off.local_replay_buffer.get_num_timesteps() == buf.get_num_timesteps()
    off.save_to_path(str(tmp_path / "small"))
    again = build(config.copy())
    again.restore_from_path(str(tmp_path / "small"))
    assert again.local_replay_buffer.get_num_timesteps() == 0


def test_replay_sampler_is_seeded_by_the_config(build):
    """RLlib seeds the episode buffer's sampler from the OS; here two runs with the same `seed` draw the same
    replay rows and another seed draws others."""
    config = offline_config("MIFQ", env="mpe/simple_spread").training(offline=False)
    draws = [build(config.copy().debugging(seed=s)).local_replay_buffer.rng.integers(1 << 30, size=4).tolist()
             for s in (7, 7, 8)]
    assert draws[0] == draws[1] != draws[2]


def test_expert_normalized_score_in_the_metrics(build):
    """Demonstrations carry the returns of their expert and of random play; evaluation then reports each
    episode's expert-normalized score (the column of `rllib train file`'s status table)."""
    from rllib_mil.data.demos import ensure_demos, score_reference

    expert, random = score_reference(ensure_demos("mpe/simple_speaker_listener", {}, "scripted", 4, 0))
    assert expert > random
    algo = build(offline_config("MIFQ"))
    ev = algo.train()["evaluation"]["env_runners"]
    score, ret = ev["expert_score"], ev["episode_return_mean"]
    assert score == pytest.approx((ret - random) / (expert - random), rel=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if IMITATION[n][1].offline_capable])
def test_restored_offline_run_continues_the_same_learning_curve(name, build, tmp_path):
    """Restore, train, compare: from a checkpoint taken at iteration 2, the restored run's losses at iterations 3
    and 4 are the ones the uninterrupted run got (modules, optimizer state, counters and the expert sampler's RNG
    all come back; offline, nothing depends on env randomness)."""
    config = offline_config(name, env="mpe/simple_spread")
    algo = build(config)
    for _ in range(2):
        algo.train()
    algo.save_to_path(str(tmp_path / "ckpt"))
    straight = [algo.train()["learners"][MODULE_ID]["loss"] for _ in range(2)]
    restored = build(config.copy())
    restored.restore_from_path(str(tmp_path / "ckpt"))
    resumed = [restored.train()["learners"][MODULE_ID]["loss"] for _ in range(2)]
    assert resumed == pytest.approx(straight, rel=1e-6, abs=1e-7)
