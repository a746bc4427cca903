"""Reward recovery: a checkpoint's recovered per-agent rewards R_i(s, a) on demonstrations, next to the true ones.

``rllib rewards export CHECKPOINT --demos PATH [--out FILE]`` writes one Parquet row per (step, agent) with the
recovered and the true reward, and prints each agent's Pearson correlation between them (MAMQL's reward-recovery
metric). Algorithms with reward networks (MAMQL) use those; the others are refused with a message.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

# Output columns.
EPISODE_ID, T, AGENT, RECOVERED, TRUE = "episode_id", "t", "agent", "recovered_reward", "true_reward"


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
def recovered_rewards(module, state: np.ndarray, actions: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """R_i(s, a) of a module with reward networks: ``state (N, s)``, ``actions (N, n)`` -> ``(N, n)``."""
    out = []
    for i in range(0, len(state), batch_size):
        s = torch.as_tensor(np.array(state[i:i + batch_size], dtype=np.float32))
        a = torch.as_tensor(np.array(actions[i:i + batch_size]))
        out.append(module.rewards(s, a).cpu().numpy())
    return np.concatenate(out, axis=0)


def export_rewards(checkpoint: str, demos: str, out: Optional[str] = None) -> Dict[str, Any]:
    """Recovered vs true per-agent rewards of ``checkpoint`` on the demonstrations ``demos``; writes ``out``
    (default: ``<demos stem>.rewards.parquet`` next to the checkpoint) and returns the per-agent correlations."""
    from rllib_mil.data.demos import read_demos
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import load_team_module

    module, config = load_team_module(checkpoint)
    if not hasattr(module, "rewards"):
        raise ValueError(f"{checkpoint} is a {type(module).__name__} checkpoint without reward networks; reward "
                         "export needs an algorithm that recovers rewards (MAMQL).")
    env = make_team_env(config.env, dict(config.env_config or {}))
    try:
        d = read_demos(demos, env=env)  # also checks the demonstrations fit the checkpoint's env
        names = list(env.agent_names)
    finally:
        env.close()
    rec = recovered_rewards(module, d.state, d.actions)  # (N, n)
    n = rec.shape[1]
    out = out or os.path.join(os.path.abspath(checkpoint), os.path.splitext(os.path.basename(demos))[0]
                              + ".rewards.parquet")
    table = pa.table({
        EPISODE_ID: np.repeat(d.episode_id, n), T: np.repeat(d.t, n),
        AGENT: np.tile(np.asarray(names), len(d)),
        RECOVERED: rec.reshape(-1).astype(np.float32), TRUE: d.agent_rewards.reshape(-1).astype(np.float32),
    })
    pq.write_table(table, out)
    corr = {names[i]: pearson(rec[:, i], d.agent_rewards[:, i]) for i in range(n)}
    return {"checkpoint": os.path.abspath(checkpoint), "demos": os.path.abspath(demos), "out": out,
            "rows": int(len(d)), "pearson": corr}
