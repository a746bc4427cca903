"""Per-agent Q networks.

Decentralized execution is kept by construction: one MLP, shared by all agents (paper §4.2.1, footnote 2), reads
only agent i's own observation row plus its one-hot id, so Q_i depends on nothing but (o_i, i).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class SharedAgentQNet(nn.Module):
    """``forward(obs: (..., n_agents, obs_dim)) -> q: (..., n_agents, n_actions)``, usually (B, n, d) -> (B, n, A)."""

    def __init__(
        self,
        obs_dim: int,
        n_agents: int,
        n_actions: int,
        hidden: Sequence[int] = (128, 128),
        add_agent_id: bool = True,
        activation: str = "relu",
    ):
        super().__init__()
        self.obs_dim, self.n_agents, self.n_actions = obs_dim, n_agents, n_actions
        self.add_agent_id = add_agent_id
        in_dim = obs_dim + (n_agents if add_agent_id else 0)
        self.mlp = _mlp(in_dim, tuple(hidden), n_actions, activation)
        # A buffer so it follows .to(device) and is saved with the state dict.
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)  # (n, n)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() < 2 or tuple(obs.shape[-2:]) != (self.n_agents, self.obs_dim):
            raise ValueError(
                f"SharedAgentQNet expects obs of shape (..., n_agents={self.n_agents}, obs_dim={self.obs_dim}), "
                f"got {tuple(obs.shape)}"
            )
        x = obs
        if self.add_agent_id:
            ids = self.agent_ids.to(obs.dtype).expand(*obs.shape[:-1], self.n_agents)  # (..., n, n)
            x = torch.cat([obs, ids], dim=-1)  # (..., n, d + n)
        # nn.Linear acts on the last dim only, so rows (agents) never mix.
        return self.mlp(x)  # (..., n, A)
