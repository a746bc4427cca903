"""Surviving failures: an env runner killed mid-run is restarted and training goes on; a trial that fails inside
(e.g. a non-finite loss) ends `rllib train file` with its own message printed last, with the last good checkpoint."""
import os
import signal
import time

import rllib_mil  # noqa: F401
from rllib_mil.algorithms.fault import HUNG_ENV_RUNNERS_KILLED
from rllib_mil.algorithms.mifq import MIFQConfig
from rllib_mil.algorithms.utils import raise_if_not_finite
from rllib_mil.cli import trial_error_message

DEMOS = {"expert": "scripted", "episodes": 4, "seed": 0}


def test_killed_env_runner_is_restarted_and_training_continues(build):
    config = (
        MIFQConfig()
        .environment("mpe/simple_spread")
        .training(expert_data=DEMOS, num_steps_sampled_before_learning_starts=50, num_updates_per_iteration=2,
                  expert_batch_size=32, train_batch_size_per_learner=32, pretrain_offline_updates=0)
        .env_runners(num_env_runners=2, num_cpus_per_env_runner=0.5, rollout_fragment_length=25)
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1.0)
        .debugging(seed=0)
    )
    algo = build(config)
    before = algo.train()["num_env_steps_sampled_lifetime"]
    pids = algo.env_runner_group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)  # a crashed env runner process (OOM kill, node loss)
    deadline, res = time.time() + 180, None
    while time.time() < deadline:
        res = algo.train()
        ft = res["fault_tolerance"]
        if ft["num_remote_worker_restarts"] >= 1 and ft["num_healthy_workers"] == 2:
            break
    ft = res["fault_tolerance"]
    assert ft["num_remote_worker_restarts"] >= 1 and ft["num_healthy_workers"] == 2, ft
    res = algo.train()  # and the restarted runner samples again
    assert res["num_env_steps_sampled_lifetime"] > before
    new_pids = algo.env_runner_group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)
    assert len(new_pids) == 2 and pids[0] not in new_pids
    assert res["learners"]["default_policy"]["expert_rows"] == 32


def test_hung_env_runner_is_killed_restarted_and_training_continues(build):
    """An env runner stuck inside a call (a hung simulator) never dies, so RLlib alone would only drop its samples
    after `sample_timeout_s`, every iteration; HungEnvRunnerGuard kills it when it misses a health probe, Ray
    restarts it and it samples again."""
    config = (
        MIFQConfig()
        .environment("mpe/simple_spread")
        .training(expert_data=DEMOS, num_steps_sampled_before_learning_starts=50, num_updates_per_iteration=2,
                  expert_batch_size=32, train_batch_size_per_learner=32, pretrain_offline_updates=0)
        .env_runners(num_env_runners=2, num_cpus_per_env_runner=0.5, rollout_fragment_length=25,
                     sample_timeout_s=3.0)
        .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1.0,
                         env_runner_health_probe_timeout_s=2.0)
        .debugging(seed=0)
    )
    algo = build(config)
    algo.train()
    group = algo.env_runner_group
    ids = group.healthy_env_runner_ids()
    pids = dict(zip(ids, group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)))
    # Runner ids[0] gets stuck: a call that never returns occupies the actor, so its next sample() never runs.
    group.foreach_env_runner(lambda runner: time.sleep(3600), remote_worker_ids=[ids[0]], local_env_runner=False,
                             timeout_seconds=0)
    deadline, res = time.time() + 240, None
    while time.time() < deadline:
        res = algo.train()
        if res.get(HUNG_ENV_RUNNERS_KILLED, 0) >= 1 and res["fault_tolerance"]["num_healthy_workers"] == 2:
            break
    assert res.get(HUNG_ENV_RUNNERS_KILLED, 0) >= 1, res.get("fault_tolerance")
    assert res["fault_tolerance"]["num_healthy_workers"] == 2, res["fault_tolerance"]
    # The stuck process was replaced, the other one kept, and both sample again (no more dropped results).
    new_pids = dict(zip(group.healthy_env_runner_ids(),
                        group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)))
    assert new_pids[ids[0]] != pids[ids[0]] and new_pids[ids[1]] == pids[ids[1]]
    dropped = res["fault_tolerance"]["num_env_runners_dropped_lifetime"]
    steps = res["num_env_steps_sampled_lifetime"]
    res = algo.train()
    assert res["fault_tolerance"]["num_env_runners_dropped_lifetime"] == dropped
    assert res["num_env_steps_sampled_lifetime"] - steps >= 2 * 25


def test_failed_trial_message_is_the_cause_not_the_wrapper():
    try:
        import torch

        raise_if_not_finite("MIFQ", torch.tensor(float("nan")), {"reward_term": torch.tensor(float("inf")),
                                                                  "value_term": torch.tensor(0.5)}, "Lower `lr`.")
    except FloatingPointError as e:
        cause = e
    # What Tune hands back: Ray's task-error text around the trial's exception.
    wrapped = (f"ray::MIFQ.train() (pid=123, ip=10.0.0.1, actor_id=abc)\n  File \"algorithm.py\", line 1, in train\n"
               f"    raise\nFloatingPointError: {cause}\n\nThe above exception was the direct cause of:\n"
               f"ray.exceptions.RayTaskError(FloatingPointError): ray::MIFQ.train()\nFloatingPointError: {cause}")
    msg = trial_error_message(wrapped)
    assert msg.startswith("FloatingPointError: MIFQ loss is not finite") and "reward_term inf" in msg
    assert "Lower `lr`" in msg and "Checkpoints already written are kept" in msg
