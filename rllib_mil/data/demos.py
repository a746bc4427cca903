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
from rllib_mil.data.experts import (EXPERT_NAMES, Expert, NoisyExpert, episode_rng, load_checkpoint_expert, make_expert,
                                    one_torch_thread, play_episode)
from rllib_mil.envs.contract import ACTION_MASK, INFO_AGENT_REWARDS, OBS, STATE

CACHE_ENV_VAR = "RLLIB_MIL_CACHE"


class DemoValidationError(ValueError):
    """Demonstrations that cannot be used as they are (the message says what is wrong and how to fix it)."""


def package_version() -> str:
    try:
        from importlib.metadata import version

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


def resolve_expert(expert, env, stochastic: bool = False, epsilon: float = 0.0) -> tuple[Expert, str]:
    """(Expert, its name for the metadata) from "scripted" / "random" / a checkpoint path / an Expert.

    ``stochastic`` samples a checkpoint policy's actions instead of taking its greedy ones; scripted and random
    experts have one way of acting only. ``epsilon`` > 0 replaces each agent's action by a random available one
    with that probability (:class:`NoisyExpert`)."""
    if epsilon:
        actor, _ = resolve_expert(expert, env, stochastic)
        noisy = NoisyExpert(actor, epsilon)
        return noisy, noisy.name
    if isinstance(expert, (str, os.PathLike)) and str(expert) in EXPERT_NAMES:
        if stochastic:
            raise ValueError(f"stochastic expert actions apply to checkpoint experts, not to {str(expert)!r}")
        return make_expert(str(expert), env), str(expert)
    if isinstance(expert, (str, os.PathLike)):
        actor = load_checkpoint_expert(str(expert), env.env_id, env.env_config, stochastic=stochastic)
        return actor, actor.name
    if isinstance(expert, Expert) or callable(getattr(expert, "act", None)):
        return expert, str(getattr(expert, "name", type(expert).__name__))
    raise TypeError(f"expert must be 'scripted', 'random', a checkpoint path or an Expert instance, got {expert!r}")


def _collect_episodes(env_id: str, env_config: dict | None, expert, stochastic: bool, seed: int,
                      ks: list[int], epsilon: float = 0.0) -> tuple[dict[str, np.ndarray], list, list]:
    """Episodes ``ks`` (reset with ``seed + k``, acted with ``episode_rng(seed, k)``) as schema columns, plus
    their returns and win flags. Runs in-process or as a Ray task (one per env runner)."""
    from rllib_mil.envs.registry import make_team_env

    env = make_team_env(env_id, env_config)
    try:
        with one_torch_thread():  # forward passes of one observation: one torch thread (see its doc)
            actor, _ = resolve_expert(expert, env, stochastic, epsilon)
            rows: dict[str, list] = {name: [] for name in S.COLUMNS}
            returns, wins = [], []
            for k in ks:
                ret, won, steps = play_episode(env, actor, seed + k, episode_rng(seed, k), record=True)
                for t, (obs, actions, reward, next_obs, terminated, truncated, info) in enumerate(steps):
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
                returns.append(ret)
                if won is not None:
                    wins.append(won)
    finally:
        env.close()
    cols = {name: np.stack(v) if name in S.ARRAY_COLUMNS else np.asarray(v) for name, v in rows.items()}
    return cols, returns, wins


def _collect_parallel(env_id, env_config, expert, stochastic, seed, episodes, num_env_runners, epsilon=0.0):
    """Split the episodes into ``num_env_runners`` contiguous chunks, one Ray task (1 CPU) each."""
    import ray

    from rllib_mil.envs.jax_env import start_ray

    if not ray.is_initialized():
        start_ray(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True, include_dashboard=False)
    chunks = [c.tolist() for c in np.array_split(np.arange(episodes), num_env_runners) if c.size]
    task = ray.remote(num_cpus=1, max_retries=0)(_collect_episodes)
    refs = [task.remote(env_id, env_config, expert, stochastic, seed, ks, epsilon) for ks in chunks]
    try:
        parts = ray.get(refs)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    cols = {name: np.concatenate([p[0][name] for p in parts]) for name in S.COLUMNS}
    return cols, [r for p in parts for r in p[1]], [w for p in parts for w in p[2]]


def _open_temp(out_path: Path) -> str:
    parent = out_path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{out_path.name}.", suffix=".tmp")
        os.close(fd)
        # mkstemp makes the file private (0600); the dataset gets the mode any new file would (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except OSError as e:
        raise type(e)(
            e.errno,
            f"cannot write demonstrations to {str(out_path)!r}: directory {str(parent)!r} is not writable "
            f"({e.strerror or e}); choose another --out path",
        ) from e
    return tmp


# Episodes of random play measured beside every collection (the random reference of expert-normalized scores).
RANDOM_REFERENCE_EPISODES = 20


def score_reference(path: str | os.PathLike) -> tuple[float, float] | None:
    """(expert mean return, random mean return) from a demonstrations file's metadata alone (the Parquet footer,
    no rows read), or None when the file lacks the random reference or cannot be read."""
    try:
        meta = _decode_metadata(path, pq.read_schema(path).metadata)
        expert, random = meta.get(S.META_EXPERT_MEAN_RETURN), meta.get(S.META_RANDOM_MEAN_RETURN)
    except Exception:  # a missing or foreign file: no score, never a failed episode
        return None
    if expert is None or random is None or expert == random:
        return None
    return float(expert), float(random)


def collect_demos(env_id: str, env_config: dict | None, expert, episodes: int, seed: int,
                  out_path: str | os.PathLike, *, num_env_runners: int = 0, stochastic: bool = False,
                  epsilon: float = 0.0) -> str:
    """Roll out ``expert`` ("scripted", "random", a checkpoint path or an :class:`Expert`) for ``episodes``
    episodes of ``env_id`` and write them to ``out_path`` atomically. Returns the path.

    Episode k is reset with seed ``seed + k`` (one seed per trajectory, as in the MIFQ paper §5.2) and acted
    with ``episode_rng(seed, k)``, so the data do not depend on ``num_env_runners``: 0 collects in this
    process, N > 0 in N parallel Ray tasks (joining the cluster at ``RAY_ADDRESS`` or starting a local one).
    ``stochastic``: sample a checkpoint expert's actions instead of taking its greedy ones. ``epsilon``: each
    agent takes a random available action with this probability at every step (graded-quality data).

    The file is written to a temp file in the same directory and renamed into place, so an interrupted or
    failed collection never leaves a partial dataset under ``out_path``."""
    from rllib_mil.envs.registry import make_team_env

    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, (int, np.integer)) or num_env_runners < 0:
        raise ValueError(f"num_env_runners must be an integer >= 0, got {num_env_runners!r}")
    episodes, seed, num_env_runners = int(episodes), int(seed), min(int(num_env_runners), int(episodes))
    out_path = Path(out_path)
    env = make_team_env(env_id, env_config)
    try:
        # Resolve (and check) the expert here, so a bad checkpoint fails before any worker starts.
        actor, expert_name = resolve_expert(expert, env, stochastic, epsilon)
    finally:
        env.close()
    tmp = _open_temp(out_path)  # fail before spending time on rollouts if the directory is unwritable
    try:
        if num_env_runners == 0:
            cols, returns, wins = _collect_episodes(env_id, env.env_config, actor, False, seed,
                                                    list(range(episodes)))
        else:
            # Workers rebuild the expert from its name/path (small to ship); Expert instances are pickled.
            # (the noise is applied there too: `actor` already wraps an Expert instance in it)
            spec, eps = (str(expert), epsilon) if isinstance(expert, (str, os.PathLike)) else (actor, 0.0)
            cols, returns, wins = _collect_parallel(env_id, env.env_config, spec, stochastic, seed, episodes,
                                                    num_env_runners, eps)
        returns = np.asarray(returns)
        # Random play on the first episodes' seeds: the 0 of expert-normalized scores.
        ks = list(range(min(episodes, RANDOM_REFERENCE_EPISODES)))
        if expert_name == "random":
            random_returns = returns[: len(ks)]
        elif num_env_runners == 0:
            _, random_returns, _ = _collect_episodes(env_id, env.env_config, "random", False, seed, ks)
        else:
            _, random_returns, _ = _collect_parallel(env_id, env.env_config, "random", False, seed, len(ks),
                                                     min(num_env_runners, len(ks)))
        metadata = {
            S.META_SCHEMA_VERSION: S.SCHEMA_VERSION,
            S.META_ENV_ID: env.env_id,
            S.META_ENV_CONFIG: env.env_config,
            S.META_N_AGENTS: env.n_agents,
            S.META_OBS_DIM: env.obs_dim,
            S.META_STATE_DIM: env.state_dim,
            S.META_N_ACTIONS: env.n_actions,
            S.META_EXPERT: expert_name,
            S.META_EXPERT_ACTIONS: "stochastic" if stochastic else "greedy",
            S.META_EXPERT_MEAN_RETURN: float(returns.mean()),
            S.META_EXPERT_STD_RETURN: float(returns.std()),
            S.META_EXPERT_WIN_RATE: float(np.mean(wins)) if wins else None,
            S.META_RANDOM_MEAN_RETURN: float(np.mean(random_returns)),
            S.META_EPISODES: episodes,
            S.META_SEED: seed,
            S.META_PACKAGE_VERSION: package_version(),
        }
        _write_atomic(_build_table(cols, metadata), out_path, tmp)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return str(out_path)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_atomic(table: pa.Table, out_path: Path, tmp: str | None = None) -> None:
    """Write to a temp file in the target directory, then rename: readers never see a partial file."""
    tmp = tmp or _open_temp(out_path)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def subset_path(path: str | os.PathLike, n: int) -> str:
    """Where ``write_subsets`` puts the first ``n`` episodes of ``path``: ``<stem>_<n>ep.parquet``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_{int(n)}ep{p.suffix or '.parquet'}"))


def write_subsets(path: str | os.PathLike, sizes) -> list[str]:
    """Nested datasets for the paper's "number of expert trajectories" sweeps (MIFQ §5.2, Fig. 3; 1..128 for
    MPE, 128..4096 for SMAX): for each n in ``sizes``, the first n episodes of ``path`` (reset seeds
    seed..seed+n-1), so every smaller set is a prefix of the larger ones. Each file's metadata states its own
    episode count and return; its win rate is null when the parent has one (per-episode outcomes are not
    stored), and ``subset_of`` names the parent. Returns the paths (see ``subset_path``)."""
    demos = read_demos(path)
    ids = np.unique(demos.episode_id)  # sorted: episode k was reset with seed + k
    out = []
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= ids.size:
            raise ValueError(f"subset size {n!r} must be an integer in 1..{ids.size} (the episodes in {str(path)!r})")
        keep = np.isin(demos.episode_id, ids[: int(n)])
        cols = {name: values[keep] for name, values in demos.columns().items()}
        returns = np.bincount(np.unique(cols[S.EPISODE_ID], return_inverse=True)[1],
                              weights=cols[S.REWARD].astype(np.float64))
        meta = dict(demos.metadata)
        meta.update({
            S.META_EPISODES: int(n),
            S.META_EXPERT_MEAN_RETURN: float(returns.mean()),
            S.META_EXPERT_STD_RETURN: float(returns.std()),
            S.META_EXPERT_WIN_RATE: None,
            S.META_SUBSET_OF: os.path.abspath(str(path)),
        })
        target = subset_path(path, n)
        _write_atomic(_build_table(cols, meta), Path(target))
        out.append(target)
    return out


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


def _cache_path(env_id: str, resolved_env_config: dict, expert: str, episodes: int, seed: int,
                cache_dir: str | os.PathLike | None = None) -> Path:
    key = cache_key(env_id, resolved_env_config, expert, episodes, seed)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    label = expert if expert in EXPERT_NAMES else "checkpoint"
    return directory / f"{env_id.replace('/', '_')}-{label}-{int(episodes)}ep-seed{int(seed)}-{key}.parquet"


def cached_demos_path(env_id: str, env_config: dict | None, expert: str = "scripted", episodes: int = 128,
                      seed: int = 0) -> str:
    """Where ``ensure_demos`` keeps these demonstrations, without collecting or reading them."""
    from rllib_mil.envs.registry import make_team_env

    expert = str(expert)
    if expert not in EXPERT_NAMES:
        expert = os.path.abspath(os.path.expanduser(expert))
    env = make_team_env(env_id, env_config)
    try:
        return str(_cache_path(env_id, env.env_config, expert, episodes, seed))
    finally:
        env.close()


def ensure_demos(env_id: str, env_config: dict | None = None, expert: str = "scripted", episodes: int = 128,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None) -> str:
    """Path of cached demonstrations for these arguments, collecting them on first use.

    The file name is derived from a hash of (env id, resolved env_config, expert, episodes, seed, schema
    version); a present file is reused when it reads back valid, otherwise it is re-collected."""
    from rllib_mil.envs.registry import make_team_env

    if not isinstance(expert, (str, os.PathLike)):
        raise TypeError("ensure_demos caches by expert name: pass 'scripted', 'random' or a checkpoint path "
                        "(use collect_demos for an Expert instance)")
    expert = str(expert)
    if expert not in EXPERT_NAMES:  # a checkpoint: cache by its absolute path
        expert = os.path.abspath(os.path.expanduser(expert))
    env = make_team_env(env_id, env_config)  # resolves defaults, so {} and {"N": 3} share a cache entry
    path = _cache_path(env_id, env.env_config, expert, episodes, seed, cache_dir)
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
    for key in S.REQUIRED_METADATA + (S.META_EXPERT_ACTIONS, S.META_SUBSET_OF, S.META_RANDOM_MEAN_RETURN):
        if key in meta:
            lines.append(f"  {key.split('.', 1)[1]:<20} {json.dumps(meta[key])}")
    lines += [
        f"  {'rows (team steps)':<20} {len(demos)}",
        f"  {'episodes (in file)':<20} {demos.n_episodes}",
        f"  {'mean return':<20} {returns.mean():.4f} ± {returns.std():.4f} "
        f"(min {returns.min():.4f}, max {returns.max():.4f})",
        f"  {'episode length':<20} mean {len(demos) / max(demos.n_episodes, 1):.1f}",
    ]
    return "\n".join(lines)
