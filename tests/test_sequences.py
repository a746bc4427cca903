"""Whole-episode sequences for recurrent agents: padding, the expert buffer's episodes, and padded steps kept out
of the MIFQ loss."""
import numpy as np
import pytest
import torch

from rllib_mil.data import schema as S
from rllib_mil.data.demos import collect_demos, read_demos
from rllib_mil.data.expert_buffer import ExpertBuffer
from rllib_mil.data.sequences import (SEQ_ACTIONS, SEQ_KEYS, SEQ_MASK, SEQ_OBS, SEQ_STATE, SEQ_TERMINATED,
                                      SEQ_VALID, pad_sequences)


def episode(L, n=2, d=3, s=4, A=5, terminated=True, seed=0):
    rng = np.random.default_rng(seed)
    return {SEQ_OBS: rng.normal(size=(L + 1, n, d)).astype(np.float32),
            SEQ_STATE: rng.normal(size=(L + 1, s)).astype(np.float32),
            SEQ_MASK: np.ones((L + 1, n, A), np.float32),
            SEQ_ACTIONS: rng.integers(0, A, size=(L, n)),
            SEQ_TERMINATED: np.r_[np.zeros(L - 1), float(terminated)].astype(np.float32)}


def test_pad_sequences_layout():
    a, b = episode(3, seed=1), episode(5, terminated=False, seed=2)
    out = pad_sequences([a, b])
    assert out[SEQ_OBS].shape == (2, 6, 2, 3) and out[SEQ_ACTIONS].shape == (2, 5, 2)
    assert out[SEQ_STATE].shape == (2, 6, 4) and out[SEQ_MASK].shape == (2, 6, 2, 5)
    np.testing.assert_array_equal(out[SEQ_VALID], [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(out[SEQ_TERMINATED], [[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out[SEQ_OBS][0, :4], a[SEQ_OBS])  # o_0 .. o_3 (o_3 after the last action)
    assert not out[SEQ_OBS][0, 4:].any() and not out[SEQ_MASK][0, 4:].any() and not out[SEQ_ACTIONS][0, 3:].any()
    np.testing.assert_array_equal(out[SEQ_OBS][1], b[SEQ_OBS])
    with pytest.raises(ValueError, match="at least one"):
        pad_sequences([])


@pytest.fixture(scope="module")
def demos_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq") / "sl.parquet"
    collect_demos("mpe/simple_speaker_listener", {"max_cycles": 7}, "scripted", episodes=3, seed=0, out_path=out)
    return out


def test_expert_buffer_sequences_are_whole_episodes(demos_path):
    cols = read_demos(demos_path).columns()
    buf = ExpertBuffer.from_path(demos_path)
    gen = torch.Generator().manual_seed(0)
    seq = buf.sample_sequences(6, generator=gen)
    assert set(seq) == set(SEQ_KEYS)
    assert seq[SEQ_OBS].shape == (6, 8, 2, 11) and seq[SEQ_ACTIONS].shape == (6, 7, 2)
    assert (seq[SEQ_VALID] == 1).all()  # every episode has max_cycles = 7 steps
    for b in range(6):
        # find the episode by its first observation and check every step against the flat rows
        first = seq[SEQ_OBS][b, 0].numpy()
        ep_rows = [i for i in range(len(cols[S.T])) if cols[S.T][i] == 0 and np.array_equal(cols[S.OBS][i], first)]
        assert len(ep_rows) == 1
        ep = cols[S.EPISODE_ID][ep_rows[0]]
        rows = sorted(np.flatnonzero(cols[S.EPISODE_ID] == ep), key=lambda i: cols[S.T][i])
        np.testing.assert_array_equal(seq[SEQ_ACTIONS][b].numpy(), cols[S.ACTIONS][rows])
        np.testing.assert_array_equal(seq[SEQ_OBS][b, :7].numpy(), cols[S.OBS][rows])
        np.testing.assert_array_equal(seq[SEQ_OBS][b, 7].numpy(), cols[S.NEXT_OBS][rows[-1]])
        np.testing.assert_array_equal(seq[SEQ_STATE][b, 7].numpy(), cols[S.NEXT_STATE][rows[-1]])
        np.testing.assert_array_equal(seq[SEQ_MASK][b, 1:].numpy(), cols[S.NEXT_ACTION_MASK][rows])


def test_expert_buffer_sequences_pad_short_episodes():
    # two episodes of lengths 2 and 4, rows stored out of order
    n, d, s, A = 1, 2, 3, 2
    ep = np.array([1, 0, 1, 0, 0, 0])
    t = np.array([1, 3, 0, 0, 2, 1])
    N = len(ep)
    tensors = {
        S.OBS: torch.arange(N * d, dtype=torch.float32).reshape(N, n, d) + 1,
        S.STATE: torch.ones(N, s), S.ACTION_MASK: torch.ones(N, n, A), S.ACTIONS: torch.tensor(t).reshape(N, n),
        S.REWARD: torch.zeros(N), S.AGENT_REWARDS: torch.zeros(N, n),
        S.NEXT_OBS: -(torch.arange(N * d, dtype=torch.float32).reshape(N, n, d) + 1),
        S.NEXT_STATE: torch.ones(N, s), S.NEXT_ACTION_MASK: torch.ones(N, n, A),
        S.TERMINATED: torch.tensor([1.0, 1, 0, 0, 0, 0]), S.TRUNCATED: torch.zeros(N),
    }
    from rllib_mil.data.expert_buffer import _episode_index

    buf = ExpertBuffer(tensors, episode_index=_episode_index(ep, t, "cpu"))
    np.testing.assert_array_equal(buf.episode_index.numpy(), [[3, 5, 4, 1], [2, 0, -1, -1]])
    seq = {k: v.numpy() for k, v in buf.sample_sequences(40, torch.Generator().manual_seed(1)).items()}
    short = np.flatnonzero(seq[SEQ_VALID].sum(1) == 2)
    assert 0 < len(short) < 40
    b = short[0]
    np.testing.assert_array_equal(seq[SEQ_VALID][b], [1, 1, 0, 0])
    np.testing.assert_array_equal(seq[SEQ_ACTIONS][b, :, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(seq[SEQ_TERMINATED][b], [0, 1, 0, 0])
    np.testing.assert_array_equal(seq[SEQ_OBS][b, :, 0, 0], [5, 1, -1, 0, 0])  # o_0, o_1, then next obs of t=1


def test_padded_steps_stay_out_of_the_mifq_loss(ray_session):
    """Garbage in the padded steps of a replay batch changes nothing the loss sees (same rows, same loss)."""
    from rllib_mil.algorithms.mifq import MIFQConfig

    cfg = (MIFQConfig().environment("mpe/simple_speaker_listener", env_config={"max_cycles": 7})
           .training(expert_data={"expert": "scripted", "episodes": 3, "seed": 0}, use_gru=True, hidden=[16],
                     gru_hidden=8, expert_batch_size=2)
           .env_runners(num_env_runners=0))
    algo = cfg.build_algo()
    try:
        learner = algo.learner_group._learner
        module = learner.module["default_policy"].unwrapped()
        short, full = episode(3, n=2, d=11, s=14, A=5, seed=3), episode(7, n=2, d=11, s=14, A=5, seed=4)
        for e in (short, full):
            e[SEQ_MASK][:] = 1.0
        clean = pad_sequences([short, full])
        dirty = {k: v.copy() for k, v in clean.items()}
        rng = np.random.default_rng(0)
        pad = dirty[SEQ_VALID] == 0  # (B, T)
        pad1 = np.concatenate([np.zeros((2, 1), bool), pad], axis=1)  # observations after each episode's o_L
        dirty[SEQ_OBS][pad1] = rng.normal(size=dirty[SEQ_OBS][pad1].shape) * 100
        dirty[SEQ_MASK][pad1] = 1.0
        dirty[SEQ_ACTIONS][pad] = 4
        dirty[SEQ_TERMINATED][pad] = 1.0
        results = []
        for batch in (clean, dirty):
            learner._expert_gen.manual_seed(0)
            tb = {k: torch.as_tensor(v) for k, v in batch.items()}
            rows = learner._sequence_rows(module, algo.config, tb, online_next=True)
            results.append(rows)
        a, b = results
        assert (a.n_e, a.n_r) == (b.n_e, b.n_r) and a.n_r == 3 + 7
        for field in ("q", "q_next", "q_next_online", "mask", "mask_next", "state", "state_next", "actions", "done"):
            torch.testing.assert_close(getattr(a, field), getattr(b, field))
        assert a.done[a.n_e:].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    finally:
        algo.stop()
