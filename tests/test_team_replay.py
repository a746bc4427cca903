"""TeamEpisodeReplayBuffer: the flat one-step rows the off-policy team algorithms draw are exactly the steps of the
episodes RLlib's buffer holds (after evictions and after a checkpoint restore), in the train-batch layout the
learner connectors would build, and a draw builds no episode objects."""
import numpy as np
import pytest
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from rllib_mil.algorithms.mamql import MAMQLConfig
from rllib_mil.algorithms.mifq import MIFQConfig
from rllib_mil.data.schema import AGENT_REWARDS
from rllib_mil.data.sequences import episode_arrays, SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_REWARDS, SEQ_STATE
from rllib_mil.data.team_replay import TeamEpisodeReplayBuffer
from rllib_mil.envs import ACTION_MASK, OBS, STATE
from rllib_mil.envs.contract import INFO_AGENT_REWARDS


def online(config_cls, env="mpe/simple_spread", capacity=2000, **training):
    training = {"expert_data": {"expert": "scripted", "episodes": 4, "seed": 0}, "num_updates_per_iteration": 1,
                "expert_batch_size": 16, "train_batch_size_per_learner": 16,
                "num_steps_sampled_before_learning_starts": 10_000, "replay_buffer_config": {"capacity": capacity},
                **training}
    return (config_cls().environment(env).training(**training)
            .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=10))


def stored_steps(buffer):
    """Every step of the buffer's episodes, in episode order, from RLlib's own episode objects."""
    steps = []
    for ep in buffer.episodes:
        seq = episode_arrays(ep)
        infos = ep.get_infos()
        for t in range(len(seq[SEQ_ACTIONS])):
            steps.append({"obs": seq[SEQ_OBS][t], "state": seq[SEQ_STATE][t], "mask": seq[SEQ_MASK][t],
                          "next_obs": seq[SEQ_OBS][t + 1], "next_state": seq[SEQ_STATE][t + 1],
                          "action": seq[SEQ_ACTIONS][t], "reward": seq[SEQ_REWARDS][t],
                          "terminated": float(ep.is_terminated and t == len(seq[SEQ_ACTIONS]) - 1),
                          "agent_rewards": np.asarray(infos[t + 1][INFO_AGENT_REWARDS], np.float32)})
    return steps


def assert_rows_are_stored_steps(rows, buffer):
    by_obs = {step["obs"].tobytes(): step for step in stored_steps(buffer)}
    for i in range(len(rows[Columns.REWARDS])):
        # MPE observations are continuous: each one identifies its step
        step = by_obs[np.asarray(rows[Columns.OBS][OBS][i], np.float32).tobytes()]
        np.testing.assert_array_equal(rows[Columns.OBS][STATE][i], step["state"])
        np.testing.assert_array_equal(rows[Columns.OBS][ACTION_MASK][i], step["mask"])
        np.testing.assert_array_equal(rows[Columns.NEXT_OBS][OBS][i], step["next_obs"])
        np.testing.assert_array_equal(rows[Columns.NEXT_OBS][STATE][i], step["next_state"])
        np.testing.assert_array_equal(rows[Columns.ACTIONS][i], step["action"])
        assert rows[Columns.REWARDS][i] == pytest.approx(step["reward"])
        assert rows[Columns.TERMINATEDS][i] == step["terminated"]
        np.testing.assert_allclose(rows[AGENT_REWARDS][i], step["agent_rewards"])


def test_flat_rows_are_the_stored_steps_after_evictions(build):
    algo = build(online(MIFQConfig, capacity=60))  # 20 steps per round: evictions start in round 4
    buffer = algo.local_replay_buffer
    assert isinstance(buffer, TeamEpisodeReplayBuffer)
    for _ in range(8):
        algo.sample_into_replay()
        assert buffer.num_transitions() == buffer.get_num_timesteps() == len(stored_steps(buffer))
    assert buffer.get_num_episodes_evicted() > 0
    rows = buffer.sample_transitions(200)
    assert rows[Columns.OBS][OBS].shape == (200, 3, buffer.episodes[0].get_observations(0)[OBS].shape[-1])
    assert rows[Columns.ACTIONS].dtype == np.int64 and rows[Columns.ACTIONS].shape == (200, 3)
    assert rows[Columns.REWARDS].shape == rows[Columns.TERMINATEDS].shape == (200,)
    assert_rows_are_stored_steps(rows, buffer)
    # uniform over steps: 200 draws from at most 80 stored steps reach most of them
    assert len(np.unique(rows[Columns.OBS][OBS][:, 0, 0])) > buffer.num_transitions() // 2


def test_restored_buffer_draws_the_same_rows(build, tmp_path):
    config = online(MIFQConfig, capacity=60)
    algo = build(config)
    for _ in range(5):
        algo.sample_into_replay()
    algo.save_to_path(str(tmp_path / "ckpt"))
    restored = build(config.copy())
    restored.restore_from_path(str(tmp_path / "ckpt"))
    a, b = algo.local_replay_buffer.sample_transitions(64), restored.local_replay_buffer.sample_transitions(64)
    for key in (Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a[Columns.NEXT_OBS][OBS], b[Columns.NEXT_OBS][OBS])


def test_empty_buffer_says_to_sample_first():
    with pytest.raises(ValueError, match="sample into it"):
        TeamEpisodeReplayBuffer(capacity=10).sample_transitions(4)


def test_general_sum_rows_carry_each_agents_reward_into_the_loss(build):
    """MAMQL on simple_reference (the agents' rewards differ): the replay rows' per-agent rewards reach the learner
    (its recovered-vs-true reward correlation is computed from them)."""
    algo = build(online(MAMQLConfig, env="mpe/simple_reference", num_steps_sampled_before_learning_starts=0))
    result = algo.train()
    rows = algo.local_replay_buffer.sample_transitions(64)
    assert not np.isnan(rows[AGENT_REWARDS]).any()
    assert (rows[AGENT_REWARDS][:, 0] != rows[AGENT_REWARDS][:, 1]).any()
    assert "reward_corr_replay" in result["learners"]["default_policy"]


def test_config_from_a_dict_builds_the_team_buffer(build):
    """Tune hands the config over as a dict, and update_from_dict turns the buffer's class path into the class."""
    config = MIFQConfig().update_from_dict(online(MIFQConfig).to_dict())
    assert isinstance(config.replay_buffer_config["type"], type)
    algo = build(config)
    assert isinstance(algo.local_replay_buffer, TeamEpisodeReplayBuffer)
    algo.sample_into_replay()
    assert algo.local_replay_buffer.num_transitions() > 0


def test_another_buffer_type_is_refused_with_the_fix():
    config = online(MIFQConfig, replay_buffer_config={"type": "EpisodeReplayBuffer"})
    with pytest.raises(ValueError, match="Leave `type` out"):
        config.validate()
