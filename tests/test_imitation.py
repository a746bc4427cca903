"""What every registered imitation algorithm (``registry.IMITATION``: MIFQ, IIQ, IQVDN, BC) must do, in-process:
learn from demonstrations alone (offline) with the expert rows in the metrics, evaluate greedily, save a
checkpoint that ``rllib evaluate`` runs, train recurrent agents on whole episodes, and refuse a config without
demonstrations. BC's own behaviour follows at the end."""
import math

import pytest
from ray.rllib.algorithms.algorithm import Algorithm

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from rllib_mil.algorithms.bc import BC, BCConfig
from rllib_mil.algorithms.registry import IMITATION
from rllib_mil.evaluation import evaluate_checkpoint

NAMES = sorted(IMITATION)
MODULE_ID = "default_policy"
DEMOS = {"expert": "scripted", "episodes": 4, "seed": 0}


def offline_config(name, env="mpe/simple_speaker_listener", **training):
    _, config_cls = IMITATION[name]
    return (
        config_cls()
        .environment(env)
        .training(**{"expert_data": DEMOS, "offline": True, "expert_batch_size": 32, "num_updates_per_iteration": 5,
                     **training})
        .env_runners(num_env_runners=0)
        .evaluation(evaluation_interval=1, evaluation_duration=2, evaluation_duration_unit="episodes")
        .fault_tolerance(restart_failed_env_runners=False)
    )


@pytest.mark.parametrize("name", NAMES)
def test_learns_offline_evaluates_and_checkpoints(name, build, tmp_path):
    algo = build(offline_config(name))
    results = [algo.train() for _ in range(2)]
    last = results[-1]
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
    algo = build(offline_config(name, env="smax/3m", use_gru=True, hidden=[32], gru_hidden=16, expert_batch_size=2))
    result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert float(stats["expert_rows"]) >= 2 * 3  # the real steps of 2 whole episodes
    assert 0.0 <= result["evaluation"]["env_runners"]["win_rate"] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_missing_expert_data_names_the_fix(name):
    _, config_cls = IMITATION[name]
    with pytest.raises(ValueError, match=r"`expert_data` is not set.*rllib demos collect"):
        config_cls().environment("mpe/simple_spread").validate()


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
