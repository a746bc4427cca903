"""Demonstrations: collect (atomically) to Parquet, read with full validation, cache, summarise.

See ``schema.py`` for the file format. Reading validates the file on its own (columns, dims, finite values,
actions available under the stored mask, schema version) and, given a target :class:`TeamEnv`, against it
(env id, n_agents, obs_dim, state_dim, n_actions). Every failure is a :class:`DemoValidationError` naming the
mismatch and how to fix it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rllib_mil.data import schema as S
from rllib_mil.data.experts import Expert, make_expert
from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, INFO_BATTLE_WON, OBS, STATE

CACHE_ENV_VAR = "RLLIB_MIL_CACHE"


class DemoValidationError(ValueError):
    """Demonstrations that cannot be used as they are (the message says what is wrong and how to fix it)."""


def package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("rllib-mil")
    except Exception:  # PackageNotFoundError or a broken install: running from a source checkout
        return "0.0.0+local"


def _recollect_hint(env_id: str | None) -> str:
    env = env_id if env_id else "<env id>"
    return (f"Re-collect them with `rllib demos collect --env {env} ...` "
            f"(or rllib_mil.data.collect_demos / ensure_demos).")


# ------------------------------------------------------------------------------------------------ Demos
@dataclass
class Demos:
    """Demonstrations as numpy arrays (N = number of team steps) plus the file's metadata."""

    episode_id: np.ndarray  # (N,) int64
    t: np.ndarray  # (N,) int64
    obs: np.ndarray  # (N, n, d) float32
    state: np.ndarray  # (N, s) float32
    action_mask: np.ndarray  # (N, n, A) float32
    actions: np.ndarray  # (N, n) int64
    reward: np.ndarray  # (N,) float32
    agent_rewards: np.ndarray  # (N, n) float32
    next_obs: np.ndarray  # (N, n, d) float32
    next_state: np.ndarray  # (N, s) float32
    next_action_mask: np.ndarray  # (N, n, A) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    metadata: dict[str, Any] = field(default_factory=dict)  # keys: schema.META_*; values decoded from JSON
    path: str | None = None

    def __len__(self) -> int:
        return int(self.episode_id.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        """The arrays keyed by the schema's column names."""
        return {
            S.EPISODE_ID: self.episode_id, S.T: self.t, S.OBS: self.obs, S.STATE: self.state,
            S.ACTION_MASK: self.action_mask, S.ACTIONS: self.actions, S.REWARD: self.reward,
            S.AGENT_REWARDS: self.agent_rewards, S.NEXT_OBS: self.next_obs, S.NEXT_STATE: self.next_state,
            S.NEXT_ACTION_MASK: self.next_action_mask, S.TERMINATED: self.terminated,
            S.TRUNCATED: self.truncated,
        }

    @property
    def env_id(self) -> str:
        return self.metadata[S.META_ENV_ID]

    @property
    def env_config(self) -> dict:
        return self.metadata[S.META_ENV_CONFIG]

    @property
    def n_agents(self) -> int:
        return self.metadata[S.META_N_AGENTS]

    @property
    def obs_dim(self) -> int:
        return self.metadata[S.META_OBS_DIM]

    @property
    def state_dim(self) -> int:
        return self.metadata[S.META_STATE_DIM]

    @property
    def n_actions(self) -> int:
        return self.metadata[S.META_N_ACTIONS]

    @property
    def n_episodes(self) -> int:
        return int(np.unique(self.episode_id).size)

    def episode_returns(self) -> np.ndarray:
        """Team return of each episode, in episode-id order."""
        ids, inverse = np.unique(self.episode_id, return_inverse=True)
        return np.bincount(inverse, weights=self.reward.astype(np.float64), minlength=ids.size)


# ---------------------------------------------------------------------------------------------- writing
def _list_array(values: np.ndarray, width: int, dtype) -> pa.Array:
    n = values.shape[0]
    flat = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _build_table(cols: dict[str, np.ndarray], metadata: dict[str, Any]) -> pa.Table:
    arrays, names = [], []
    for name in S.COLUMNS:
        values = cols[name]
        if name in S.ARRAY_COLUMNS:
            dtype = np.float32 if S.ARRAY_COLUMNS[name][0] == "float32" else np.int64
            width = int(np.prod(values.shape[1:], dtype=np.int64))
            arrays.append(_list_array(values, width, dtype))
        else:
            arrays.append(pa.array(np.asarray(values, dtype=S.SCALAR_COLUMNS[name])))
        names.append(name)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({k: json.dumps(v) for k, v in metadata.items()})


def _resolve_expert(expert, env) -> tuple[Expert, str]:
    if isinstance(expert, str):
        return make_expert(expert, env), expert
    if isinstance(expert, Expert) or callable(getattr(expert, "act", None)):
        return expert, str(getattr(expert, "name", type(expert).__name__))
    raise TypeError(f"expert must be 'scripted', 'random' or an Expert instance, got {expert!r}")


def _open_temp(out_path: Path) -> str:
    parent = out_path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{out_path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise type(e)(
            e.errno,
            f"cannot write demonstrations to {str(out_path)!r}: directory {str(parent)!r} is not writable "
            f"({e.strerror or e}); choose another --out path",
        ) from e
    return tmp


def collect_demos(env_id: str, env_config: dict | None, expert, episodes: int, seed: int,
                  out_path: str | os.PathLike) -> str:
    """Roll out ``expert`` ("scripted", "random" or an :class:`Expert`) for ``episodes`` episodes of
    ``env_id`` (episode k reset with ``seed + k``; the expert's rng is ``default_rng(seed)``) and write them to
    ``out_path`` atomically (a temp file in the same directory, then ``os.replace``). Returns the path."""
    from rllib_mil.envs.registry import make_team_env

    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    episodes, seed = int(episodes), int(seed)
    out_path = Path(out_path)
    env = make_team_env(env_id, env_config)
    actor, expert_name = _resolve_expert(expert, env)
    tmp = _open_temp(out_path)  # fail before spending time on rollouts if the directory is unwritable
    try:
        rng = np.random.default_rng(seed)
        rows: dict[str, list] = {name: [] for name in S.COLUMNS}
        returns = np.zeros(episodes)
        wins: list[bool] = []
        for k in range(episodes):
            obs, info = env.reset(seed=seed + k)
            t, done = 0, False
            while not done:
                actions = np.asarray(actor.act(obs, rng), dtype=np.int64)
                next_obs, reward, terminated, truncated, info = env.step(actions)
                rows[S.EPISODE_ID].append(k)
                rows[S.T].append(t)
                rows[S.OBS].append(obs[OBS])
                rows[S.STATE].append(obs[STATE])
                rows[S.ACTION_MASK].append(obs[ACTION_MASK])
                rows[S.ACTIONS].append(actions)
                rows[S.REWARD].append(reward)
                rows[S.AGENT_REWARDS].append(info[INFO_AGENT_REWARDS])
                rows[S.NEXT_OBS].append(next_obs[OBS])
                rows[S.NEXT_STATE].append(next_obs[STATE])
                rows[S.NEXT_ACTION_MASK].append(next_obs[ACTION_MASK])
                rows[S.TERMINATED].append(terminated)
                rows[S.TRUNCATED].append(truncated)
                returns[k] += reward
                obs, t, done = next_obs, t + 1, terminated or truncated
            if INFO_BATTLE_WON in info:
                wins.append(bool(info[INFO_BATTLE_WON]))
        env.close()
        cols = {name: np.stack(v) if name in S.ARRAY_COLUMNS else np.asarray(v) for name, v in rows.items()}
        metadata = {
            S.META_SCHEMA_VERSION: S.SCHEMA_VERSION,
            S.META_ENV_ID: env.env_id,
            S.META_ENV_CONFIG: env.env_config,
            S.META_N_AGENTS: env.n_agents,
            S.META_OBS_DIM: env.obs_dim,
            S.META_STATE_DIM: env.state_dim,
            S.META_N_ACTIONS: env.n_actions,
            S.META_EXPERT: expert_name,
            S.META_EXPERT_MEAN_RETURN: float(returns.mean()),
            S.META_EXPERT_STD_RETURN: float(returns.std()),
            S.META_EXPERT_WIN_RATE: float(np.mean(wins)) if wins else None,
            S.META_EPISODES: episodes,
            S.META_SEED: seed,
            S.META_PACKAGE_VERSION: package_version(),
        }
        pq.write_table(_build_table(cols, metadata), tmp)
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return str(out_path)


# ---------------------------------------------------------------------------------------------- reading
def _fail(path, msg: str, env_id: str | None) -> DemoValidationError:
    return DemoValidationError(f"Invalid demonstrations {str(path)!r}: {msg}. {_recollect_hint(env_id)}")


def _decode_metadata(path, raw: dict[bytes, bytes] | None) -> dict[str, Any]:
    raw = raw or {}
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode()
        if not key.startswith("rllib_mil."):
            continue  # e.g. pandas / ray metadata
        try:
            meta[key] = json.loads(v.decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise _fail(path, f"metadata {key!r} is not valid JSON ({e})", None) from None
    env_id = meta.get(S.META_ENV_ID) if isinstance(meta.get(S.META_ENV_ID), str) else None
    missing = [k for k in S.REQUIRED_METADATA if k not in meta]
    if missing:
        raise _fail(path, f"missing metadata keys {missing} (not written by rllib_mil.data.collect_demos?)", env_id)
    version = meta[S.META_SCHEMA_VERSION]
    if version != S.SCHEMA_VERSION:
        raise _fail(path, f"schema version {version!r}, but this rllib_mil ({package_version()}) reads schema "
                          f"version {S.SCHEMA_VERSION}", env_id)
    for short, key in S.DIM_KEYS.items():
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise _fail(path, f"metadata {short}={v!r} is not a positive integer", env_id)
    if not isinstance(meta[S.META_ENV_CONFIG], dict):
        raise _fail(path, f"metadata env_config={meta[S.META_ENV_CONFIG]!r} is not a JSON object", env_id)
    return meta


def _column_to_numpy(path, table: pa.Table, name: str, meta: dict, env_id: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    n_rows = table.num_rows
    if col.null_count:
        raise _fail(path, f"column {name!r} has {col.null_count} null values", env_id)
    if name in S.ARRAY_COLUMNS:
        dtype, dims = S.ARRAY_COLUMNS[name]
        shape = tuple(meta[S.DIM_KEYS[d]] for d in dims)
        width = int(np.prod(shape))
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
                or pa.types.is_fixed_size_list(col.type)):
            raise _fail(path, f"column {name!r} has type {col.type}, expected list<{dtype}>", env_id)
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            dims_txt = ", ".join(f"{d}={meta[S.DIM_KEYS[d]]}" for d in dims)
            raise _fail(path, f"column {name!r} row {int(bad[0])} holds {int(lengths[bad[0]])} values but the "
                              f"metadata ({dims_txt}) says {width}", env_id)
        flat = col.flatten()
        if flat.null_count:
            raise _fail(path, f"column {name!r} has null entries inside its arrays", env_id)
        try:
            values = flat.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        except (TypeError, ValueError, pa.ArrowException) as e:
            raise _fail(path, f"column {name!r} cannot be read as {dtype} ({e})", env_id) from None
        return values.reshape((n_rows,) + shape)
    dtype = S.SCALAR_COLUMNS[name]
    try:
        return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    except (TypeError, ValueError, pa.ArrowException) as e:
        raise _fail(path, f"column {name!r} cannot be read as {dtype} ({e})", env_id) from None


def _check_against_env(path, meta: dict, env) -> None:
    env_spec = env.spec_dict()
    demo_env = meta[S.META_ENV_ID]
    if demo_env != env_spec["env_id"]:
        raise DemoValidationError(
            f"Invalid demonstrations {str(path)!r}: they were collected on env {demo_env!r} but the target env "
            f"is {env_spec['env_id']!r}. {_recollect_hint(env_spec['env_id'])}"
        )
    for short, key in S.DIM_KEYS.items():
        if meta[key] != env_spec[short]:
            raise DemoValidationError(
                f"Invalid demonstrations {str(path)!r}: demonstrations have {short}={meta[key]} but env "
                f"{env_spec['env_id']} (env_config={env_spec['env_config']}) has {short}={env_spec[short]}. "
                f"Re-collect them with the same env_config: `rllib demos collect --env {env_spec['env_id']} ...`."
            )
    if meta[S.META_ENV_CONFIG] != env_spec["env_config"]:
        warnings.warn(
            f"demonstrations {str(path)!r} were collected with env_config={meta[S.META_ENV_CONFIG]} but the "
            f"target env uses env_config={env_spec['env_config']} (same shapes, so they are used anyway)",
            stacklevel=3,
        )


def read_demos(path: str | os.PathLike, env=None) -> Demos:
    """Read and validate demonstrations; with ``env`` (a TeamEnv) also check they fit that env."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No demonstrations at {str(path)!r}. {_recollect_hint(getattr(env, 'env_id', None))}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise _fail(path, f"not a readable Parquet file ({e})", getattr(env, "env_id", None)) from None
    meta = _decode_metadata(path, table.schema.metadata)
    env_id = meta[S.META_ENV_ID]
    missing = [c for c in S.COLUMNS if c not in table.column_names]
    if missing:
        raise _fail(path, f"missing columns {missing}", env_id)
    if env is not None:
        _check_against_env(path, meta, env)
    arrays = {name: _column_to_numpy(path, table, name, meta, env_id) for name in S.COLUMNS}
    if table.num_rows == 0:
        raise _fail(path, "the file holds no steps", env_id)
    for name, values in arrays.items():
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            if not finite.all():
                idx = np.argwhere(~finite)[0]
                raise _fail(path, f"column {name!r} has NaN/inf values (first at row {int(idx[0])})", env_id)
    n_actions = meta[S.META_N_ACTIONS]
    acts = arrays[S.ACTIONS]
    if acts.min() < 0 or acts.max() >= n_actions:
        row, agent = np.argwhere((acts < 0) | (acts >= n_actions))[0]
        raise _fail(path, f"action {int(acts[row, agent])} of agent {int(agent)} at row {int(row)} is outside "
                          f"[0, n_actions={n_actions})", env_id)
    mask = arrays[S.ACTION_MASK]
    avail = np.take_along_axis(mask, acts[..., None], axis=-1)[..., 0]
    if (avail <= 0).any():
        row, agent = np.argwhere(avail <= 0)[0]
        raise _fail(path, f"action {int(acts[row, agent])} of agent {int(agent)} at row {int(row)} (episode "
                          f"{int(arrays[S.EPISODE_ID][row])}, t={int(arrays[S.T][row])}) is not available under "
                          f"the stored action mask", env_id)
    n_eps = int(np.unique(arrays[S.EPISODE_ID]).size)
    if n_eps != meta[S.META_EPISODES]:
        raise _fail(path, f"the file holds {n_eps} episodes but its metadata says episodes="
                          f"{meta[S.META_EPISODES]} (truncated or edited file?)", env_id)
    return Demos(**arrays, metadata=meta, path=str(path))


# ---------------------------------------------------------------------------------------------- caching
def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rllib_mil" / "demos"


def cache_key(env_id: str, env_config: dict, expert: str, episodes: int, seed: int) -> str:
    blob = json.dumps(
        {"env_id": env_id, "env_config": env_config, "expert": expert, "episodes": int(episodes),
         "seed": int(seed), "schema_version": S.SCHEMA_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_demos(env_id: str, env_config: dict | None = None, expert: str = "scripted", episodes: int = 128,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None) -> str:
    """Path of cached demonstrations for these arguments, collecting them on first use.

    The file name is derived from a hash of (env id, resolved env_config, expert, episodes, seed, schema
    version); a present file is reused when it reads back valid, otherwise it is re-collected."""
    from rllib_mil.envs.registry import make_team_env

    if not isinstance(expert, str):
        raise TypeError("ensure_demos caches by expert name: pass 'scripted' or 'random' "
                        "(use collect_demos for an Expert instance)")
    env = make_team_env(env_id, env_config)  # resolves defaults, so {} and {"N": 3} share a cache entry
    key = cache_key(env_id, env.env_config, expert, episodes, seed)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"{env_id.replace('/', '_')}-{expert}-{int(episodes)}ep-seed{int(seed)}-{key}.parquet"
    try:
        if path.is_file():
            try:
                read_demos(path, env=env)
                return str(path)
            except DemoValidationError as e:
                warnings.warn(f"cached demonstrations are invalid and will be re-collected: {e}", stacklevel=2)
    finally:
        env.close()
    return collect_demos(env_id, env.env_config, expert, episodes, seed, path)


# ---------------------------------------------------------------------------------------------- summary
def demos_info(path: str | os.PathLike) -> str:
    """Human-readable summary of a demonstrations file (validates it on the way)."""
    demos = read_demos(path)
    meta = demos.metadata
    returns = demos.episode_returns()
    lines = [f"demonstrations: {demos.path}"]
    for key in S.REQUIRED_METADATA:
        lines.append(f"  {key.split('.', 1)[1]:<20} {json.dumps(meta[key])}")
    lines += [
        f"  {'rows (team steps)':<20} {len(demos)}",
        f"  {'episodes (in file)':<20} {demos.n_episodes}",
        f"  {'mean return':<20} {returns.mean():.4f} ± {returns.std():.4f} "
        f"(min {returns.min():.4f}, max {returns.max():.4f})",
        f"  {'episode length':<20} mean {len(demos) / max(demos.n_episodes, 1):.1f}",
    ]
    return "\n".join(lines)
