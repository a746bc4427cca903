"""Demonstrations: scripted experts, collect/read round trip, metadata, validation errors, atomic writes,
caching, expert buffer."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rllib_mil.data import (
    DemoValidationError,
    Expert,
    ExpertBuffer,
    RandomExpert,
    collect_demos,
    demos_info,
    ensure_demos,
    make_expert,
    read_demos,
    run_episodes,
)
from rllib_mil.data import demos as demos_mod
from rllib_mil.data import schema as S
from rllib_mil.envs import ACTION_MASK, make_team_env

MPE = ["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"]


# ------------------------------------------------------------------------------------------------ experts
@pytest.mark.parametrize("env_id", MPE)
def test_scripted_expert_beats_random_by_wide_margin(env_id):
    """Stated margin: over 10 episodes (seed 0) the scripted team return is at least 10 higher than random's
    and less than half of random's cost (returns are negative). Measured over 100 episodes (docs/experts.md):
    spread -7.0 vs -26.3, reference -7.5 vs -28.4, speaker_listener -7.9 vs -44.1."""
    env = make_team_env(env_id)
    scripted = run_episodes(env, make_expert("scripted", env), episodes=10, seed=0).mean()
    random = run_episodes(env, make_expert("random", env), episodes=10, seed=0).mean()
    assert scripted > random + 10.0, (scripted, random)
    assert scripted > 0.5 * random, (scripted, random)


def test_scripted_spread_scales_to_n4():
    env = make_team_env("mpe/simple_spread", {"N": 4})
    scripted = run_episodes(env, make_expert("scripted", env), episodes=5, seed=0).mean()
    random = run_episodes(env, make_expert("random", env), episodes=5, seed=0).mean()
    assert scripted > random + 10.0


def test_experts_respect_mask_and_are_functions_of_obs():
    env = make_team_env("mpe/simple_speaker_listener")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = np.stack([RandomExpert().act(obs, rng) for _ in range(200)])
    assert acts.dtype == np.int64 and acts[:, 0].max() <= 2 and acts[:, 1].max() == 4
    scripted = make_expert("scripted", env)
    assert isinstance(scripted, Expert) and scripted.name == "scripted"
    a1 = scripted.act(obs, np.random.default_rng(1))
    a2 = scripted.act({k: v.copy() for k, v in obs.items()}, np.random.default_rng(2))
    np.testing.assert_array_equal(a1, a2)
    assert a1[0] == int(np.argmax(obs["obs"][0, :3]))  # the speaker names the goal landmark
    with pytest.raises(ValueError, match="Unknown expert 'oracle'"):
        make_expert("oracle", env)


def test_reference_expert_treats_unknown_words_as_silence():
    """Words 3-9 name no landmark; the scripted listener heads for the landmarks' centroid, as before any word."""
    env = make_team_env("mpe/simple_reference")
    obs, _ = env.reset(seed=0)
    expert = make_expert("scripted", env)
    silent = expert.act(obs, np.random.default_rng(0))
    for word in (3, 9):
        heard = {k: v.copy() for k, v in obs.items()}
        heard["obs"][:, 11 + word] = 1.0
        np.testing.assert_array_equal(expert.act(heard, np.random.default_rng(0)), silent)


def test_noisy_expert_mixes_random_actions_at_rate_epsilon():
    from rllib_mil.data.experts import NoisyExpert

    env = make_team_env("mpe/simple_speaker_listener")
    obs, _ = env.reset(seed=0)
    scripted = make_expert("scripted", env)
    want = scripted.act(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(NoisyExpert(scripted, 0.0).act(obs, np.random.default_rng(0)), want)
    rng = np.random.default_rng(1)
    acts = np.stack([NoisyExpert(scripted, 0.5).act(obs, rng) for _ in range(2000)])  # (2000, 2)
    mask = np.asarray(obs[ACTION_MASK]) > 0
    assert all(mask[i, acts[:, i]].all() for i in range(2))  # only available actions
    # P(action != expert's) = epsilon * (1 - 1/|available|): 0.5 * 2/3 for the speaker, 0.5 * 4/5 for the listener
    np.testing.assert_allclose((acts != want).mean(axis=0), [1 / 3, 0.4], atol=0.04)
    assert NoisyExpert(scripted, 0.5).name == "scripted+epsilon0.5"
    for bad in (-0.1, 1.5, True, "0.3"):
        with pytest.raises(ValueError, match=r"epsilon must be a number in \[0, 1\]"):
            NoisyExpert(scripted, bad)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sl_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "sl.parquet"
    return collect_demos("mpe/simple_speaker_listener", {"max_cycles": 10}, "scripted", 4, 11, path)


@pytest.fixture(scope="module")
def spread_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "spread.parquet"
    return collect_demos("mpe/simple_spread", {}, "random", 3, 5, path)


def _rewrite(src, dst, table=None, metadata_update=None):
    """Copy a demos file, optionally with another table and/or changed metadata (JSON values)."""
    orig = pq.read_table(src)
    meta = dict(orig.schema.metadata)
    for k, v in (metadata_update or {}).items():
        meta[k.encode()] = json.dumps(v).encode()
    table = (table if table is not None else orig).replace_schema_metadata(meta)
    pq.write_table(table, dst)
    return dst


def _replace_column(table, name, values, list_type=None):
    idx = table.column_names.index(name)
    arr = pa.array(values, type=list_type) if list_type is not None else pa.array(values)
    return table.set_column(idx, name, arr)


# ------------------------------------------------------------------------------------------------ round trip
def test_round_trip_values_equal_rollout(sl_path):
    demos = read_demos(sl_path, env=make_team_env("mpe/simple_speaker_listener", {"max_cycles": 10}))
    assert len(demos) == 40 and demos.n_episodes == 4
    # replay: episode k reset with seed+k, expert rng default_rng(seed)
    env = make_team_env("mpe/simple_speaker_listener", {"max_cycles": 10})
    expert = make_expert("scripted", env)
    rng = np.random.default_rng(11)
    row = 0
    for k in range(4):
        obs, _ = env.reset(seed=11 + k)
        for t in range(10):
            np.testing.assert_array_equal(demos.obs[row], obs["obs"])
            np.testing.assert_array_equal(demos.state[row], obs["state"])
            np.testing.assert_array_equal(demos.action_mask[row], obs[ACTION_MASK])
            act = expert.act(obs, rng)
            np.testing.assert_array_equal(demos.actions[row], act)
            nxt, r, term, trunc, info = env.step(act)
            assert demos.reward[row] == np.float32(r)
            np.testing.assert_array_equal(demos.agent_rewards[row], info["agent_rewards"])
            np.testing.assert_array_equal(demos.next_obs[row], nxt["obs"])
            np.testing.assert_array_equal(demos.next_state[row], nxt["state"])
            assert (demos.episode_id[row], demos.t[row]) == (k, t)
            assert (bool(demos.terminated[row]), bool(demos.truncated[row])) == (term, trunc)
            obs, row = nxt, row + 1
    assert demos.truncated.sum() == 4 and not demos.terminated.any()
    # dtypes and shapes
    assert demos.obs.shape == (40, 2, 11) and demos.obs.dtype == np.float32
    assert demos.actions.shape == (40, 2) and demos.actions.dtype == np.int64
    assert demos.state.shape == (40, 14) and demos.action_mask.shape == (40, 2, 5)


def test_metadata(sl_path):
    meta = read_demos(sl_path).metadata
    assert meta[S.META_SCHEMA_VERSION] == S.SCHEMA_VERSION == 1
    assert meta[S.META_ENV_ID] == "mpe/simple_speaker_listener"
    assert meta[S.META_ENV_CONFIG] == {"max_cycles": 10}
    assert (meta[S.META_N_AGENTS], meta[S.META_OBS_DIM], meta[S.META_STATE_DIM], meta[S.META_N_ACTIONS]) == (2, 11, 14, 5)
    assert meta[S.META_EXPERT] == "scripted"
    assert meta[S.META_EPISODES] == 4 and meta[S.META_SEED] == 11
    assert meta[S.META_EXPERT_WIN_RATE] is None
    assert isinstance(meta[S.META_PACKAGE_VERSION], str) and meta[S.META_PACKAGE_VERSION]
    returns = read_demos(sl_path).episode_returns()
    assert meta[S.META_EXPERT_MEAN_RETURN] == pytest.approx(returns.mean(), rel=1e-5)
    assert meta[S.META_EXPERT_STD_RETURN] == pytest.approx(returns.std(), rel=1e-4)
    # every value is JSON in the Parquet key-value metadata; pandas reads the file
    raw = pq.read_schema(sl_path).metadata
    assert json.loads(raw[S.META_ENV_ID.encode()]) == "mpe/simple_speaker_listener"
    import pandas as pd

    df = pd.read_parquet(sl_path)
    assert list(df.columns) == list(S.COLUMNS) and len(df) == 40
    info = demos_info(sl_path)
    assert "mpe/simple_speaker_listener" in info and "episodes" in info and "mean return" in info


def test_custom_expert_instance(tmp_path):
    class AlwaysSayZero(Expert):
        name = "say-zero"

        def act(self, team_obs, rng):
            return np.array([0, 0], dtype=np.int64)

    path = collect_demos("mpe/simple_speaker_listener", {"max_cycles": 3}, AlwaysSayZero(), 2, 0, tmp_path / "z.parquet")
    demos = read_demos(path)
    assert demos.metadata[S.META_EXPERT] == "say-zero" and (demos.actions == 0).all()


# ------------------------------------------------------------------------------------------------ validation
def test_wrong_env_id(sl_path):
    with pytest.raises(DemoValidationError, match=r"collected on env 'mpe/simple_speaker_listener' but the target env is 'mpe/simple_reference'.*rllib demos collect --env mpe/simple_reference"):
        read_demos(sl_path, env=make_team_env("mpe/simple_reference"))


def test_wrong_n_agents(spread_path):
    with pytest.raises(DemoValidationError, match=r"demonstrations have n_agents=3 but env mpe/simple_spread .*has n_agents=4.*rllib demos collect --env mpe/simple_spread"):
        read_demos(spread_path, env=make_team_env("mpe/simple_spread", {"N": 4}))


@pytest.mark.parametrize("dim", ["obs_dim", "state_dim", "n_actions"])
def test_wrong_dims_against_env(spread_path, dim):
    env = make_team_env("mpe/simple_spread")
    spec = env.spec_dict()
    spec[dim] += 1
    fake = SimpleNamespace(env_id=spec["env_id"], spec_dict=lambda: spec)
    with pytest.raises(DemoValidationError, match=rf"demonstrations have {dim}={spec[dim] - 1} but env mpe/simple_spread .*has {dim}={spec[dim]}"):
        read_demos(spread_path, env=fake)


def test_dims_inconsistent_with_metadata(spread_path, tmp_path):
    bad = _rewrite(spread_path, tmp_path / "bad.parquet", metadata_update={S.META_OBS_DIM: 17})
    with pytest.raises(DemoValidationError, match=r"column 'obs' row 0 holds 54 values but the metadata \(n_agents=3, obs_dim=17\) says 51"):
        read_demos(bad)


def test_env_config_mismatch_only_warns(spread_path):
    with pytest.warns(UserWarning, match="env_config"):
        read_demos(spread_path, env=make_team_env("mpe/simple_spread", {"max_cycles": 30}))


def test_nan_rejected(spread_path, tmp_path):
    table = pq.read_table(spread_path)
    reward = table.column(S.REWARD).to_numpy().copy()
    reward[5] = np.nan
    bad = _rewrite(spread_path, tmp_path / "nan.parquet", table=_replace_column(table, S.REWARD, reward))
    with pytest.raises(DemoValidationError, match=r"column 'reward' has NaN/inf values \(first at row 5\)"):
        read_demos(bad)
    obs = np.stack(table.column(S.NEXT_OBS).to_pylist())
    obs[7, 3] = np.inf
    bad = _rewrite(spread_path, tmp_path / "inf.parquet",
                   table=_replace_column(table, S.NEXT_OBS, list(obs.astype(np.float32)), pa.list_(pa.float32())))
    with pytest.raises(DemoValidationError, match=r"column 'next_obs' has NaN/inf values \(first at row 7\)"):
        read_demos(bad)


def test_missing_column(spread_path, tmp_path):
    table = pq.read_table(spread_path)
    bad = _rewrite(spread_path, tmp_path / "missing.parquet", table=table.drop_columns([S.NEXT_STATE]))
    with pytest.raises(DemoValidationError, match=r"missing columns \['next_state'\]"):
        read_demos(bad)


def test_action_not_available_under_mask(sl_path, tmp_path):
    table = pq.read_table(sl_path)
    acts = np.stack(table.column(S.ACTIONS).to_pylist())
    acts[3, 0] = 4  # the speaker has 3 words; 4 is a padded action
    bad = _rewrite(sl_path, tmp_path / "mask.parquet",
                   table=_replace_column(table, S.ACTIONS, list(acts), pa.list_(pa.int64())))
    with pytest.raises(DemoValidationError, match=r"action 4 of agent 0 at row 3 .*not available under the stored action mask"):
        read_demos(bad, env=make_team_env("mpe/simple_speaker_listener", {"max_cycles": 10}))
    acts[3, 0] = 9
    bad = _rewrite(sl_path, tmp_path / "range.parquet",
                   table=_replace_column(table, S.ACTIONS, list(acts), pa.list_(pa.int64())))
    with pytest.raises(DemoValidationError, match=r"outside \[0, n_actions=5\)"):
        read_demos(bad)


def test_schema_version_and_missing_metadata(spread_path, tmp_path):
    bad = _rewrite(spread_path, tmp_path / "v2.parquet", metadata_update={S.META_SCHEMA_VERSION: 2})
    with pytest.raises(DemoValidationError, match="schema version 2"):
        read_demos(bad)
    pq.write_table(pq.read_table(spread_path).replace_schema_metadata({}), tmp_path / "nometa.parquet")
    with pytest.raises(DemoValidationError, match="missing metadata keys"):
        read_demos(tmp_path / "nometa.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DemoValidationError, match="not a readable Parquet file"):
        read_demos(tmp_path / "junk.parquet")
    with pytest.raises(FileNotFoundError, match="rllib demos collect"):
        read_demos(tmp_path / "absent.parquet")


# ------------------------------------------------------------------------------------------------ writing
class _Exploding(Expert):
    name = "exploding"

    def __init__(self, after):
        self.calls, self.after = 0, after

    def act(self, team_obs, rng):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt("simulated interruption")
        return np.zeros(team_obs["obs"].shape[0], dtype=np.int64)


def test_atomic_write_interrupted_collection_leaves_nothing(tmp_path):
    out = tmp_path / "demos.parquet"
    with pytest.raises(KeyboardInterrupt):
        collect_demos("mpe/simple_spread", {}, _Exploding(after=30), 3, 0, out)
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no temp file left behind
    # an existing file is only ever replaced whole
    collect_demos("mpe/simple_spread", {"max_cycles": 5}, "random", 1, 0, out)
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        collect_demos("mpe/simple_spread", {}, _Exploding(after=3), 3, 0, out)
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["demos.parquet"]


def test_unwritable_output_dir_names_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "sub" / "demos.parquet"
    with pytest.raises(OSError, match="cannot write demonstrations to .*a_file/sub/demos.parquet"):
        collect_demos("mpe/simple_spread", {}, "random", 1, 0, out)


def test_ensure_demos_caches(tmp_path, monkeypatch):
    calls = []
    real = demos_mod.collect_demos

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(demos_mod, "collect_demos", counting)
    p1 = ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 5}, "scripted", 2, 0, cache_dir=tmp_path)
    p2 = ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 5}, "scripted", 2, 0, cache_dir=tmp_path)
    assert p1 == p2 and len(calls) == 1 and os.path.dirname(p1) == str(tmp_path)
    # defaults are resolved before hashing; other arguments give another file
    p3 = ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 5}, "scripted", 2, 1, cache_dir=tmp_path)
    assert p3 != p1 and len(calls) == 2
    p4 = ensure_demos("mpe/simple_speaker_listener", {}, "scripted", 1, 0, cache_dir=tmp_path)
    p5 = ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 25}, "scripted", 1, 0, cache_dir=tmp_path)
    assert p4 == p5 and len(calls) == 3
    # a corrupted cache entry is re-collected
    with open(p1, "wb") as f:
        f.write(b"garbage")
    with pytest.warns(UserWarning, match="re-collected"):
        assert ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 5}, "scripted", 2, 0, cache_dir=tmp_path) == p1
    assert len(calls) == 4 and len(read_demos(p1)) == 10
    # $RLLIB_MIL_CACHE is the default cache dir
    monkeypatch.setenv("RLLIB_MIL_CACHE", str(tmp_path / "envcache"))
    p6 = ensure_demos("mpe/simple_speaker_listener", {"max_cycles": 5}, "scripted", 2, 0)
    assert os.path.dirname(p6) == str(tmp_path / "envcache")


# ------------------------------------------------------------------------------------------------ buffer
def test_expert_buffer(spread_path):
    env = make_team_env("mpe/simple_spread")
    buf = ExpertBuffer.from_path(spread_path, env=env, device="cpu")
    demos = read_demos(spread_path)
    n = len(demos)
    assert len(buf) == n == 75
    expected = {
        S.OBS: ((n, 3, 18), torch.float32), S.STATE: ((n, 54), torch.float32),
        S.ACTION_MASK: ((n, 3, 5), torch.float32), S.ACTIONS: ((n, 3), torch.int64), S.REWARD: ((n,), torch.float32),
        S.NEXT_OBS: ((n, 3, 18), torch.float32), S.NEXT_STATE: ((n, 54), torch.float32),
        S.NEXT_ACTION_MASK: ((n, 3, 5), torch.float32), S.TERMINATED: ((n,), torch.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(buf.tensors[key].shape) == shape and buf.tensors[key].dtype == dtype, key
    np.testing.assert_array_equal(buf.tensors[S.OBS].numpy(), demos.obs)
    np.testing.assert_array_equal(buf.tensors[S.ACTIONS].numpy(), demos.actions)
    batch = buf.sample(32, generator=torch.Generator().manual_seed(0))
    assert set(expected) <= set(batch)
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == (32,) + shape[1:] and batch[key].dtype == dtype
    again = buf.sample(32, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    # rows stay aligned: each sampled (obs, actions) pair is a real transition
    rows = {(demos.obs[i].tobytes(), demos.actions[i].tobytes()) for i in range(n)}
    for i in range(32):
        assert (batch[S.OBS][i].numpy().tobytes(), batch[S.ACTIONS][i].numpy().tobytes()) in rows
    # uniform with replacement: a large sample covers every row
    big = buf.sample(5000, generator=torch.Generator().manual_seed(1))
    assert torch.unique(big[S.REWARD]).numel() == np.unique(demos.reward).size
    with pytest.raises(DemoValidationError):
        ExpertBuffer.from_path(spread_path, env=make_team_env("mpe/simple_reference"))


def test_nested_subsets_for_size_sweeps(tmp_path):
    from rllib_mil.data.demos import subset_path, write_subsets

    full = collect_demos("mpe/simple_spread", {"max_cycles": 5}, "random", 5, 3, tmp_path / "d.parquet")
    paths = write_subsets(full, [1, 3, 5])
    assert paths == [subset_path(full, n) for n in (1, 3, 5)] == [str(tmp_path / f"d_{n}ep.parquet") for n in (1, 3, 5)]
    parent = read_demos(full)
    for n, path in zip((1, 3, 5), paths):
        sub = read_demos(path, env=make_team_env("mpe/simple_spread", {"max_cycles": 5}))
        assert sub.n_episodes == n and sub.metadata[S.META_EPISODES] == n
        rows = parent.episode_id < n  # episode k was reset with seed 3 + k: a prefix of the parent
        for name, values in sub.columns().items():
            np.testing.assert_array_equal(values, parent.columns()[name][rows], err_msg=name)
        assert sub.metadata[S.META_EXPERT_MEAN_RETURN] == pytest.approx(sub.episode_returns().mean())
        assert sub.metadata[S.META_SUBSET_OF] == os.path.abspath(full)
        assert sub.metadata[S.META_SEED] == 3
    with pytest.raises(ValueError, match="1..5"):
        write_subsets(full, [6])


def test_data_layer_imports_nothing_above_it():
    """rllib_mil.data imports only envs' contract and itself (checkpoint experts come through a hook that the
    package sets), never evaluation or the algorithms: no import circle through the data layer."""
    import ast
    import pathlib

    import rllib_mil.data

    for path in pathlib.Path(rllib_mil.data.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.startswith("rllib_mil"):
                        assert name.startswith(("rllib_mil.data", "rllib_mil.envs")), f"{path.name} imports {name}"
