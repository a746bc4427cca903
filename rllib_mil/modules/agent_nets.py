"""Shared per-agent networks (soft-Q values for MIFQ, policy logits for MAPPO).

Decentralized execution is kept by construction: one network, shared by all agents (MIFQ paper §4.2.1,
footnote 2), reads only agent i's own observation row plus its one-hot id, so agent i's output depends on
nothing but (o_i, i) (and, for the GRU variant, agent i's own observation history).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def _with_agent_id(obs: torch.Tensor, agent_ids: torch.Tensor) -> torch.Tensor:
    """(..., n, d) -> (..., n, d + n): each agent's row gets its one-hot id."""
    ids = agent_ids.to(obs.dtype).expand(*obs.shape[:-1], agent_ids.shape[0])  # (..., n, n)
    return torch.cat([obs, ids], dim=-1)


def _check_obs(name: str, obs: torch.Tensor, n_agents: int, obs_dim: int, min_dim: int = 2) -> None:
    if obs.dim() < min_dim or tuple(obs.shape[-2:]) != (n_agents, obs_dim):
        lead = "..." if min_dim == 2 else "B, T"
        raise ValueError(
            f"{name} expects obs of shape ({lead}, n_agents={n_agents}, obs_dim={obs_dim}), got {tuple(obs.shape)}"
        )


class SharedAgentQNet(nn.Module):
    """``forward(obs: (..., n_agents, obs_dim)) -> (..., n_agents, n_actions)``, usually (B, n, d) -> (B, n, A).

    One MLP per agent row (shared weights): soft-Q values for MIFQ, action logits for MAPPO's actor.
    """

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
        self.mlp = mlp(in_dim, tuple(hidden), n_actions, activation)
        # A buffer so it follows .to(device) and is saved with the state dict.
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)  # (n, n)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        _check_obs(type(self).__name__, obs, self.n_agents, self.obs_dim)
        x = _with_agent_id(obs, self.agent_ids) if self.add_agent_id else obs  # (..., n, d [+ n])
        # nn.Linear acts on the last dim only, so rows (agents) never mix.
        return self.mlp(x)  # (..., n, A)


class TwoTowerAgentNet(nn.Module):
    """Two shared per-agent MLPs side by side: ``forward(obs: (..., n, d)) -> (..., n, 2A)`` = ``[first(obs) |
    second(obs)]``. The same output layout as one ``SharedAgentQNet`` with 2A outputs, but the two halves share no
    weights (MIFQ's ``prior_net="separate"``: soft-Q values and the behaviour-cloning prior's logits)."""

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, hidden: Sequence[int] = (128, 128),
                 add_agent_id: bool = True):
        super().__init__()
        self.first = SharedAgentQNet(obs_dim, n_agents, n_actions, hidden, add_agent_id)
        self.second = SharedAgentQNet(obs_dim, n_agents, n_actions, hidden, add_agent_id)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(obs), self.second(obs)], dim=-1)  # (..., n, A) x 2 -> (..., n, 2A)


class SharedAgentGRUNet(nn.Module):
    """Recurrent variant: MLP encoder -> GRU -> linear head, shared by all agents, one hidden state per agent.

    ``forward(obs: (B, T, n, d), h: (B, n, H)) -> (out: (B, T, n, out_dim), h_T: (B, n, H))``. Agents are
    folded into the batch for the GRU, so agent i's hidden state only ever sees agent i's own observations.
    """

    def __init__(
        self,
        obs_dim: int,
        n_agents: int,
        out_dim: int,
        hidden: Sequence[int] = (64,),
        gru_hidden: int = 64,
        add_agent_id: bool = True,
        activation: str = "relu",
    ):
        super().__init__()
        if not hidden:
            raise ValueError("SharedAgentGRUNet needs at least one encoder layer in `hidden`")
        self.obs_dim, self.n_agents, self.gru_hidden = obs_dim, n_agents, gru_hidden
        self.add_agent_id = add_agent_id
        in_dim = obs_dim + (n_agents if add_agent_id else 0)
        # Encoder: every hidden layer with its activation (the last Linear of mlp maps to hidden[-1]).
        self.encoder = nn.Sequential(mlp(in_dim, tuple(hidden[:-1]), hidden[-1], activation), ACTIVATIONS[activation]())
        self.gru = nn.GRU(hidden[-1], gru_hidden, batch_first=True)
        self.head = nn.Linear(gru_hidden, out_dim)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)  # (n, n)

    def initial_state(self) -> torch.Tensor:
        return torch.zeros(self.n_agents, self.gru_hidden)  # (n, H); RLlib adds the batch dim

    def forward(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_obs(type(self).__name__, obs, self.n_agents, self.obs_dim, min_dim=4)
        B, T, n, _ = obs.shape
        if tuple(h.shape) != (B, n, self.gru_hidden):
            raise ValueError(f"hidden state must have shape (B={B}, n={n}, H={self.gru_hidden}), got {tuple(h.shape)}")
        x = _with_agent_id(obs, self.agent_ids) if self.add_agent_id else obs  # (B, T, n, d')
        x = self.encoder(x)  # (B, T, n, E)
        x = x.permute(0, 2, 1, 3).reshape(B * n, T, -1)  # (B*n, T, E): one sequence per (batch row, agent)
        h0 = h.reshape(1, B * n, self.gru_hidden)  # (1, B*n, H)
        y, h_T = self.gru(x, h0)  # (B*n, T, H), (1, B*n, H)
        out = self.head(y).reshape(B, n, T, -1).permute(0, 2, 1, 3)  # (B, T, n, out)
        return out, h_T.reshape(B, n, self.gru_hidden)


class FactoredLogits(nn.Module):
    """Logits of a product of independent categoricals, laid out as one flat categorical.

    ``forward(l: (..., sum(factors))) -> (..., prod(factors))``. The flat action is the mixed-radix number
    ``a = a_0 + f_0 * (a_1 + f_1 * (a_2 + ...))`` (first factor fastest, as MPE's ``move + 5 * word``), and
    ``logit(a) = sum_k l_k[a_k]``. The softmax of these sums is exactly the product of the per-factor softmaxes,
    so sampling, log-probs, entropy and action masks keep working on the flat action, while each factor (moving,
    speaking) is learned by its own head instead of once per combination with the others.
    """

    def __init__(self, factors: Sequence[int]):
        super().__init__()
        factors = [int(f) for f in factors]
        if not factors or any(f < 1 for f in factors):
            raise ValueError(f"action factors must be positive integers, got {factors}")
        self.factors = factors
        flat = torch.arange(math.prod(factors))  # (A,)
        offsets, radix, index = 0, 1, []
        for f in factors:
            index.append(offsets + (flat // radix) % f)  # (A,): position of a_k among the concatenated heads
            offsets, radix = offsets + f, radix * f
        # (K, A): for each factor k, the column of l that holds l_k[a_k(a)].
        self.register_buffer("index", torch.stack(index), persistent=False)

    @property
    def in_dim(self) -> int:
        return sum(self.factors)

    @property
    def out_dim(self) -> int:
        return int(self.index.shape[1])

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.in_dim:
            raise ValueError(f"FactoredLogits{self.factors} expects {self.in_dim} logits, got {logits.shape[-1]}")
        # (..., sum f)[..., (K, A)] -> (..., K, A) -> sum over factors -> (..., A)
        return logits[..., self.index].sum(dim=-2)
