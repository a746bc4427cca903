"""Demonstrations recorded from trained checkpoints (MAPPO experts): greedy / sampled actions, parallel Ray env
runners, metadata, and the errors for bad input (the paper's protocol, MIFQ §5.2: one seed per trajectory)."""
import os

import numpy as np
import pytest

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from rllib_mil.algorithms.mappo import MAPPOConfig
from rllib_mil.data import schema as S
from rllib_mil.data.demos import collect_demos, read_demos
from rllib_mil.data.experts import Expert, episode_rng
from rllib_mil.envs import make_team_env
from rllib_mil.evaluation import CheckpointExpert

SPREAD = "mpe/simple_spread"
EPISODES = 6


@pytest.fixture(scope="module")
def mappo_checkpoint(ray_session, tmp_path_factory):
    """A MAPPO checkpoint on simple_spread after one small iteration (a near-uniform, stochastic policy)."""
    algo = (
        MAPPOConfig()
        .environment(SPREAD)
        .training(train_batch_size_per_learner=500, minibatch_size=250, num_epochs=1)
        .env_runners(num_env_runners=0)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        algo.train()
        path = str(tmp_path_factory.mktemp("mappo") / "checkpoint")
        algo.save_to_path(path)
    finally:
        algo.stop()
    return path


@pytest.fixture(scope="module")
def collected(mappo_checkpoint, tmp_path_factory):
    """The same expert collected serially and on 2 Ray env runners, greedy and sampled."""
    out = tmp_path_factory.mktemp("collected")
    paths = {}
    for stochastic in (False, True):
        for runners in (0, 2):
            paths[stochastic, runners] = collect_demos(
                SPREAD, {}, mappo_checkpoint, EPISODES, 7, out / f"s{int(stochastic)}-r{runners}.parquet",
                num_env_runners=runners, stochastic=stochastic,
            )
    return paths


@pytest.mark.parametrize("stochastic", [False, True], ids=["greedy", "sampled"])
def test_checkpoint_demos_validate_and_round_trip(collected, mappo_checkpoint, stochastic):
    env = make_team_env(SPREAD)
    demos = read_demos(collected[stochastic, 0], env=env)  # validates against the env
    meta = demos.metadata
    assert demos.n_episodes == EPISODES and len(demos) == EPISODES * 25
    assert meta[S.META_EXPERT] == f"checkpoint:MAPPO:{os.path.abspath(mappo_checkpoint)}"
    assert meta[S.META_EXPERT_ACTIONS] == ("stochastic" if stochastic else "greedy")
    assert meta[S.META_EPISODES] == EPISODES and meta[S.META_SEED] == 7
    returns = demos.episode_returns()
    assert meta[S.META_EXPERT_MEAN_RETURN] == pytest.approx(returns.mean(), rel=1e-5)
    assert meta[S.META_EXPERT_STD_RETURN] == pytest.approx(returns.std(), rel=1e-4)
    assert meta[S.META_EXPERT_WIN_RATE] is None  # MPE has no win

    # Round trip: replaying episode k (reset with seed 7 + k, rng episode_rng(7, k)) gives the stored rows.
    expert = CheckpointExpert(mappo_checkpoint, env_id=SPREAD, stochastic=stochastic)
    for k in (0, EPISODES - 1):
        rows = demos.episode_id == k
        expert.reset()
        rng = episode_rng(7, k)
        obs, _ = env.reset(seed=7 + k)
        for t in range(int(rows.sum())):
            np.testing.assert_allclose(demos.obs[rows][t], obs["obs"], rtol=1e-6)
            actions = expert.act(obs, rng)
            np.testing.assert_array_equal(demos.actions[rows][t], actions)
            obs, reward, *_ = env.step(actions)
            assert demos.reward[rows][t] == pytest.approx(reward, rel=1e-5)
    env.close()


def test_sampled_and_greedy_differ(collected):
    greedy, sampled = read_demos(collected[False, 0]), read_demos(collected[True, 0])
    np.testing.assert_array_equal(greedy.obs[greedy.t == 0], sampled.obs[sampled.t == 0])  # same seeds
    assert not np.array_equal(greedy.actions, sampled.actions)


@pytest.mark.parametrize("stochastic", [False, True], ids=["greedy", "sampled"])
def test_parallel_collection_equals_serial(collected, stochastic):
    """Episode k is seeded by (seed, k) alone, so 2 Ray env runners record exactly what one process does."""
    serial, parallel = read_demos(collected[stochastic, 0]), read_demos(collected[stochastic, 2])
    for name, a in serial.columns().items():
        np.testing.assert_array_equal(a, parallel.columns()[name], err_msg=name)
    meta_keys = set(serial.metadata) - {S.META_PACKAGE_VERSION}
    assert {k: serial.metadata[k] for k in meta_keys} == {k: parallel.metadata[k] for k in meta_keys}


def test_noisy_expert_parallel_equals_serial(ray_session, tmp_path):
    """`--epsilon`: the noise is drawn from episode k's own rng, so Ray env runners record what one process does;
    the metadata names the noise."""
    paths = [collect_demos(SPREAD, {}, "scripted", 4, 3, tmp_path / f"r{r}.parquet", num_env_runners=r,
                           epsilon=0.5) for r in (0, 2)]
    serial, parallel = (read_demos(p) for p in paths)
    for name, a in serial.columns().items():
        np.testing.assert_array_equal(a, parallel.columns()[name], err_msg=name)
    assert serial.metadata[S.META_EXPERT] == parallel.metadata[S.META_EXPERT] == "scripted+epsilon0.5"


# ------------------------------------------------------------------------------------------------ bad input
def test_checkpoint_for_another_env(mappo_checkpoint, tmp_path):
    out = tmp_path / "d.parquet"
    with pytest.raises(ValueError, match="trained on env 'mpe/simple_spread', not 'mpe/simple_reference'"):
        collect_demos("mpe/simple_reference", {}, mappo_checkpoint, 1, 0, out)
    with pytest.raises(ValueError, match="observation shapes"):
        collect_demos(SPREAD, {"N": 4}, mappo_checkpoint, 1, 0, out, num_env_runners=2)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_checkpoint_of_another_algorithm(ray_session, tmp_path):
    from ray.rllib.algorithms.ppo import PPOConfig

    algo = (
        PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=64, minibatch_size=32, num_epochs=1).build_algo()
    )
    try:
        path = str(tmp_path / "ppo_cartpole")
        algo.save_to_path(path)
    finally:
        algo.stop()
    out = tmp_path / "d.parquet"
    with pytest.raises(ValueError, match="algorithm 'PPO'.*does not act in a team env.*MAPPO"):
        collect_demos(SPREAD, {}, path, 1, 0, out)
    assert not out.exists()


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint directory"):
        collect_demos(SPREAD, {}, str(tmp_path / "missing"), 1, 0, tmp_path / "d.parquet")


def test_stochastic_needs_a_checkpoint_expert(tmp_path):
    with pytest.raises(ValueError, match="checkpoint experts"):
        collect_demos(SPREAD, {}, "scripted", 1, 0, tmp_path / "d.parquet", stochastic=True)


def test_unwritable_output_with_checkpoint_expert(mappo_checkpoint, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write demonstrations to .*a_file/d.parquet.*--out"):
        collect_demos(SPREAD, {}, mappo_checkpoint, 2, 0, blocker / "d.parquet", num_env_runners=2)


class _FailsInWorker(Expert):
    """Acts for a few steps, then fails: stands in for a runner that dies mid-collection."""

    name = "fails"

    def __init__(self, after):
        self.after, self.calls = after, 0

    def act(self, team_obs, rng):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("simulated runner failure")
        return np.zeros(team_obs["obs"].shape[0], dtype=np.int64)


def test_failed_parallel_collection_leaves_no_dataset(ray_session, tmp_path):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file
    out = tmp_path / "demos.parquet"
    with pytest.raises(Exception, match="simulated runner failure"):
        collect_demos(SPREAD, {}, _FailsInWorker(after=40), 4, 0, out, num_env_runners=2)
    assert os.listdir(tmp_path) == []  # neither the dataset nor a temp file


class _ThreadProbe(Expert):
    """Random actions; records torch's intra-op thread count at every step."""

    def __init__(self):
        self.threads = []

    def act(self, team_obs, rng):
        import torch

        self.threads.append(torch.get_num_threads())
        mask = team_obs["action_mask"]
        return np.array([rng.choice(np.flatnonzero(m)) for m in mask], dtype=np.int64)


def test_in_process_rollouts_use_one_torch_thread(tmp_path):
    """Evaluation and in-process collection act on batches of one observation: torch runs them on one thread
    (20x faster on a busy 2-CPU machine) and the caller's setting comes back afterwards."""
    import torch

    from rllib_mil.data.experts import episode_outcomes

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe = _ThreadProbe()
        env = make_team_env(SPREAD, {"max_cycles": 5})
        try:
            episode_outcomes(env, probe, 2, seed=0)
        finally:
            env.close()
        assert probe.threads and set(probe.threads) == {1}
        assert torch.get_num_threads() == 2
        probe = _ThreadProbe()
        collect_demos(SPREAD, {"max_cycles": 5}, probe, 2, 0, tmp_path / "d.parquet")
        assert probe.threads and set(probe.threads) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
