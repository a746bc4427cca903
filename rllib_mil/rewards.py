"""Reward recovery: a checkpoint's recovered per-agent rewards R_i(s, a) on demonstrations, next to the true ones.

``rllib rewards export CHECKPOINT --demos PATH [PATH ...] [--out FILE]`` writes one Parquet row per (step, agent) with
the recovered and the true reward, and prints each agent's Pearson correlation between them, per step and per episode
return (MAMQL's reward-recovery metric). Algorithms with reward networks (MAMQL) use those; the others are refused
with a message.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from rllib_mil.data.schema import META_EXPERT as S_META_EXPERT

# Output columns.
EPISODE_ID, T, AGENT, RECOVERED, TRUE = "episode_id", "t", "agent", "recovered_reward", "true_reward"
SOURCE = "source"  # index of the --demos file the row comes from


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; nan when either side is constant (no correlation is defined)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def torch_pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per column of ``x``, ``y (B, n)`` -> ``(n,)``; nan for a constant column."""
    xc, yc = x - x.mean(dim=0), y - y.mean(dim=0)
    den = xc.pow(2).sum(dim=0).sqrt() * yc.pow(2).sum(dim=0).sqrt()
    return torch.where(den > 0, (xc * yc).sum(dim=0) / den.clamp_min(1e-12), torch.full_like(den, float("nan")))


@torch.no_grad()
def recovered_rewards(module, state: np.ndarray, actions: np.ndarray, next_state: Optional[np.ndarray] = None,
                      batch_size: int = 4096) -> np.ndarray:
    """The recovered reward of a module with reward networks, ``(N, n)``: R_i(s, a) from ``state (N, s)`` and
    ``actions (N, n)``, or g_i(s') from ``next_state (N, s)`` for MAMQL's ``reward_form="state"``."""
    out = []
    for i in range(0, len(state), batch_size):
        s = torch.as_tensor(np.array(state[i:i + batch_size], dtype=np.float32))
        a = torch.as_tensor(np.array(actions[i:i + batch_size]))
        s2 = None if next_state is None else torch.as_tensor(np.array(next_state[i:i + batch_size], dtype=np.float32))
        out.append(module.rewards(s, a, s2).cpu().numpy())
    return np.concatenate(out, axis=0)


def episode_sums(values: np.ndarray, episode_key: np.ndarray) -> np.ndarray:
    """Per-episode sums of ``values (N, n)`` grouped by ``episode_key (N,)`` -> ``(episodes, n)``, in key order."""
    _, inverse = np.unique(episode_key, return_inverse=True)
    out = np.zeros((int(inverse.max()) + 1 if len(inverse) else 0, values.shape[1]), np.float64)
    np.add.at(out, inverse, values)
    return out


def export_rewards(checkpoint: str, demos, out: Optional[str] = None) -> Dict[str, Any]:
    """Recovered vs true per-agent rewards of ``checkpoint`` on ``demos`` (one Parquet path or several, pooled);
    writes ``out`` (default: ``<first demos stem>.rewards.parquet`` inside the checkpoint) and returns, per agent:

    * ``pearson``: correlation of R_i(s, a) with the true r_i over all steps;
    * ``pearson_return``: correlation of the episode sums. An inverse-RL reward is defined up to potential
      shaping, r + γΦ(s') − Φ(s), which moves every step's value but an episode's sum only by its end terms;
    * ``per_file``: mean recovered and true episode returns of each file, and ``pearson_sets``: their correlation
      across the files (≥ 3 of graded quality: does R rank the behaviours that produced them as r does?).

    On expert episodes alone the χ² objective leaves little to correlate (it pushes R towards one value on the
    expert's rows); pool datasets of graded quality (``rllib demos collect --epsilon``, ``--expert random``)."""
    from rllib_mil.data.demos import read_demos
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import load_team_module

    paths = [demos] if isinstance(demos, (str, os.PathLike)) else list(demos)
    if not paths:
        raise ValueError("reward export needs at least one demonstrations file (--demos PATH [PATH ...])")
    module, config = load_team_module(checkpoint)
    if not hasattr(module, "rewards"):
        raise ValueError(f"{checkpoint} is a {type(module).__name__} checkpoint without reward networks; reward "
                         "export needs an algorithm that recovers rewards (MAMQL).")
    env = make_team_env(config.env, dict(config.env_config or {}))
    try:
        data = [read_demos(p, env=env) for p in paths]  # also checks each file fits the checkpoint's env
        names = list(env.agent_names)
    finally:
        env.close()
    rec = [recovered_rewards(module, d.state, d.actions, d.next_state) for d in data]  # per file (N_f, n)
    n = len(names)
    source = np.concatenate([np.full(len(d), f, np.int64) for f, d in enumerate(data)])  # (N,)
    episode = np.concatenate([d.episode_id for d in data])  # (N,)
    recovered, true = np.concatenate(rec), np.concatenate([d.agent_rewards for d in data])  # (N, n) each
    out = out or os.path.join(os.path.abspath(checkpoint), os.path.splitext(os.path.basename(paths[0]))[0]
                              + ".rewards.parquet")
    table = pa.table({
        SOURCE: np.repeat(source, n), EPISODE_ID: np.repeat(episode, n), T: np.repeat(np.concatenate([d.t for d in data]), n),
        AGENT: np.tile(np.asarray(names), len(source)),
        RECOVERED: recovered.reshape(-1).astype(np.float32), TRUE: true.reshape(-1).astype(np.float32),
    })
    pq.write_table(table, out)
    key = source * (int(episode.max()) + 1) + episode  # one key per (file, episode)
    rec_ret, true_ret = episode_sums(recovered, key), episode_sums(true, key)  # (episodes, n) each
    per_file = []
    for f, (d, r) in enumerate(zip(data, rec)):
        ep_rec, ep_true = episode_sums(r, d.episode_id), episode_sums(d.agent_rewards, d.episode_id)
        per_file.append({"demos": os.path.abspath(paths[f]), "expert": d.metadata.get(S_META_EXPERT),
                         "episodes": int(len(ep_rec)),
                         "recovered_return": {names[i]: float(ep_rec[:, i].mean()) for i in range(n)},
                         "true_return": {names[i]: float(ep_true[:, i].mean()) for i in range(n)}})
    set_rec = np.array([[f["recovered_return"][a] for a in names] for f in per_file])  # (files, n)
    set_true = np.array([[f["true_return"][a] for a in names] for f in per_file])
    return {"checkpoint": os.path.abspath(checkpoint), "demos": [os.path.abspath(p) for p in paths], "out": out,
            "rows": int(len(source)), "episodes": int(len(rec_ret)),
            "pearson": {names[i]: pearson(recovered[:, i], true[:, i]) for i in range(n)},
            "pearson_return": {names[i]: pearson(rec_ret[:, i], true_ret[:, i]) for i in range(n)},
            "pearson_sets": {names[i]: pearson(set_rec[:, i], set_true[:, i]) if len(paths) >= 3 else float("nan")
                             for i in range(n)},
            "per_file": per_file}
