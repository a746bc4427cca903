"""Mixing networks: combine per-agent values ``x: (B, n_agents)`` into a team value ``(B,)``, conditioned on the
global state ``state: (B, state_dim)``.

The base class owns the shape checks, so each mixer only writes ``mix``. ``monotone_convex`` marks mixers that are
non-decreasing and convex in ``x`` (non-negative weights, convex non-decreasing activations: Theorem 4.3), which
is what makes the MIFQ objective convex in Q (Theorem 4.2).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Mixer(nn.Module):
    """``forward(x: (B, n_agents), state: (B, state_dim)) -> (B,)``.

    ``state_dim=None`` means the mixer does not read the state; ``state`` may then be ``None``.
    """

    monotone_convex: bool = False

    def __init__(self, n_agents: int, state_dim: Optional[int] = None):
        super().__init__()
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        self.n_agents = n_agents
        self.state_dim = state_dim

    def forward(self, x: torch.Tensor, state: Optional[torch.Tensor] = None, **extra) -> torch.Tensor:
        """``extra``: inputs some mixers need beyond the agents' values (QPLEX: ``v`` and ``actions``)."""
        name = type(self).__name__
        if x.dim() != 2 or x.shape[1] != self.n_agents:
            raise ValueError(f"{name} expects x of shape (B, n_agents={self.n_agents}), got {tuple(x.shape)}")
        if self.state_dim is not None:
            if state is None:
                raise ValueError(f"{name} reads the global state: pass state of shape (B, {self.state_dim})")
            if state.dim() != 2 or state.shape[1] != self.state_dim:
                raise ValueError(
                    f"{name} expects state of shape (B, state_dim={self.state_dim}), got {tuple(state.shape)}"
                )
        if state is not None and state.shape[0] != x.shape[0]:
            raise ValueError(
                f"{name}: x and state disagree on the batch size: x {tuple(x.shape)}, state {tuple(state.shape)}"
            )
        out = self.mix(x, state, **extra)
        if out.shape != x.shape[:1]:
            raise RuntimeError(f"{name}.mix must return shape ({x.shape[0]},), got {tuple(out.shape)}")
        return out

    def mix(self, x: torch.Tensor, state: Optional[torch.Tensor], **extra) -> torch.Tensor:  # (B, n), (B, s) -> (B,)
        raise NotImplementedError


class SumMixer(Mixer):
    """VDN: Σ_i x_i."""

    monotone_convex = True

    def mix(self, x, state):
        return x.sum(dim=-1)


class WeightedSumMixer(Mixer):
    """Σ_i α_i x_i with fixed α_i ≥ 0 (the linear mixer of Proposition 4.5)."""

    monotone_convex = True

    def __init__(self, weights: Sequence[float] | torch.Tensor, state_dim: Optional[int] = None):
        w = torch.as_tensor(weights, dtype=torch.get_default_dtype()).flatten()
        if (w < 0).any():
            raise ValueError(f"WeightedSumMixer needs non-negative weights (Prop. 4.5), got {w.tolist()}")
        super().__init__(n_agents=w.numel(), state_dim=state_dim)
        self.register_buffer("weights", w)  # (n,)

    def mix(self, x, state):
        return x @ self.weights.to(x.dtype)  # (B, n) @ (n,) -> (B,)


def _hypernet(state_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    # Two fully-connected layers with a ReLU between (paper §4.3.1, as in QMIX).
    return nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class HyperMonotoneMixer(Mixer):
    """Eq. 7/8: ``M(X; S) = ELU(X·|W1| + b1)·|W2| + b2`` with W1 (n×embed), b1 (embed), W2 (embed×1), b2 (1)
    produced from S by hypernetworks. |·| keeps the weights non-negative and ELU is convex and non-decreasing,
    so M is convex and non-decreasing in X for every state (Theorem 4.3 / Corollary 4.4). Biases stay signed.

    ``normalize=True`` rescales |W1| so each hidden unit's weights over agents sum to n_agents (the VDN scale)
    and |W2| to sum to one, with a uniform share ``min_weight`` of every column (each agent keeps at least
    min_weight of the VDN weight); ``bias=False`` drops b1 and b2. Minimising eq. 9 jointly over Q and the mixers
    otherwise has degenerate directions: weights -> 0 or a state-conditioned bias b(S) make R^tot ignore the
    local rewards (phi is then minimised by the bias alone), a constant shift of V^tot drives the value
    term to -inf, and weights concentrated on the best agent let the others' rewards fall without bound. Both options keep the weights non-negative, so Theorem 4.3 still applies.
    """

    monotone_convex = True

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        embed_dim: int = 32,
        hypernet_hidden: int = 64,
        normalize: bool = False,
        bias: bool = True,
        min_weight: float = 0.0,
    ):
        super().__init__(n_agents, state_dim)
        self.embed_dim = embed_dim
        self.normalize = normalize
        if not 0.0 <= min_weight <= 1.0 or (min_weight > 0 and not normalize):
            raise ValueError(f"min_weight must be in [0, 1] and needs normalize=True, got {min_weight}")
        self.min_weight = min_weight
        self.hyper_w1 = _hypernet(state_dim, hypernet_hidden, n_agents * embed_dim)
        self.hyper_w2 = _hypernet(state_dim, hypernet_hidden, embed_dim)
        self.hyper_b1 = _hypernet(state_dim, hypernet_hidden, embed_dim) if bias else None
        self.hyper_b2 = _hypernet(state_dim, hypernet_hidden, 1) if bias else None

    def mix(self, x, state):
        B = x.shape[0]
        w1 = self.hyper_w1(state).abs().view(B, self.n_agents, self.embed_dim)  # (B, n, E)
        w2 = self.hyper_w2(state).abs().view(B, self.embed_dim, 1)  # (B, E, 1)
        if self.normalize:
            w1 = w1 / (w1.sum(dim=1, keepdim=True) + 1e-6)  # (B, n, E): each column sums to 1 over agents
            # A uniform share keeps every agent in every hidden unit, so the mixer cannot drop an agent.
            w1 = self.n_agents * (self.min_weight / self.n_agents + (1.0 - self.min_weight) * w1)
            w2 = w2 / (w2.sum(dim=1, keepdim=True) + 1e-6)  # convex combination of hidden units
        pre = torch.bmm(x.unsqueeze(1), w1)  # (B, 1, n) @ (B, n, E) -> (B, 1, E)
        if self.hyper_b1 is not None:
            pre = pre + self.hyper_b1(state).view(B, 1, self.embed_dim)  # (B, 1, E)
        out = torch.bmm(F.elu(pre), w2).view(B)  # (B, 1, E) @ (B, E, 1) -> (B,)
        if self.hyper_b2 is not None:
            out = out + self.hyper_b2(state).view(B)
        return out


class StateWeightedSumMixer(Mixer):
    """``Σ_i w_i(S)·x_i`` with ``w_i(S) = |h(S)_i| ≥ 0`` from a two-layer hypernetwork: linear in x, monotone, no bias
    (DMIX's shape mixer: it mixes the agents' quantile deviations Z_i − E[Z_i], whose mix must stay centred)."""

    monotone_convex = True

    def __init__(self, n_agents: int, state_dim: int, hypernet_hidden: int = 64):
        super().__init__(n_agents, state_dim)
        self.hyper_w = _hypernet(state_dim, hypernet_hidden, n_agents)

    def mix(self, x, state):
        return (x * self.hyper_w(state).abs()).sum(dim=-1)  # (B, n) * (B, n) -> (B,)


class DuplexMixer(Mixer):
    """QPLEX's duplex dueling mixer (Wang et al. 2021): ``mix(Q_i(τ_i, a_i), S, v=V_i(τ_i), actions=one-hot a)``.

    Each agent's values are transformed with state-conditioned positive weights and biases,
    Q_i ← w_i(S)·Q_i + b_i(S) and V_i ← w_i(S)·V_i + b_i(S) (so A_i = Q_i − V_i keeps its sign);
    then ``Q_tot = Σ_i V_i + Σ_i λ_i(S, a)·A_i`` with ``λ_i > 0`` from a multi-head attention-like weight over the
    state and the joint action. With ``V_i = max_a Q_i`` every ``A_i ≤ 0``, so Q_tot ≤ Σ V_i with equality exactly when
    each agent takes its own greedy action: the joint argmax is the agents' argmaxes (IGM), for any λ.
    """

    def __init__(self, n_agents: int, state_dim: int, n_actions: int, hypernet_hidden: int = 64, n_heads: int = 4):
        super().__init__(n_agents, state_dim)
        self.n_actions, self.n_heads = n_actions, n_heads
        self.hyper_w = _hypernet(state_dim, hypernet_hidden, n_agents)  # transformation weights w_i(S) > 0
        self.hyper_b = _hypernet(state_dim, hypernet_hidden, n_agents)  # transformation biases b_i(S)
        # λ_i(S, a) = Σ_k |key_k(S)| · σ(agent_k(S)_i + action_k(S, a)_i) + ε, one term per head k.
        self.key = nn.ModuleList(_hypernet(state_dim, hypernet_hidden, 1) for _ in range(n_heads))
        self.agent = nn.ModuleList(_hypernet(state_dim, hypernet_hidden, n_agents) for _ in range(n_heads))
        self.action = nn.ModuleList(
            _hypernet(state_dim + n_agents * n_actions, hypernet_hidden, n_agents) for _ in range(n_heads))

    def lambdas(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """λ_i(S, a) > 0: ``state (B, s)``, ``actions (B, n, A)`` one-hot -> ``(B, n)``."""
        sa = torch.cat([state, actions.reshape(actions.shape[0], -1).to(state.dtype)], dim=-1)  # (B, s + n·A)
        lam = sum(k(state).abs() * torch.sigmoid(a(state) + u(sa))  # (B, 1) * (B, n) -> (B, n)
                  for k, a, u in zip(self.key, self.agent, self.action))
        return lam + 1e-10

    def mix(self, x, state, v=None, actions=None):
        B = x.shape[0]
        if v is None or actions is None:
            raise ValueError("DuplexMixer needs v (B, n_agents): V_i = max_a Q_i, and actions (B, n_agents, "
                             "n_actions): the joint action one-hot")
        if v.shape != x.shape or tuple(actions.shape) != (B, self.n_agents, self.n_actions):
            raise ValueError(f"DuplexMixer: v must have shape {tuple(x.shape)} and actions "
                             f"({B}, {self.n_agents}, {self.n_actions}); got {tuple(v.shape)}, {tuple(actions.shape)}")
        w = self.hyper_w(state).abs() + 1e-10  # (B, n)
        b = self.hyper_b(state)  # (B, n)
        q_i, v_i = w * x + b, w * v + b  # (B, n) each
        adv = q_i - v_i  # (B, n), ≤ 0 when v is the max over actions
        return v_i.sum(dim=-1) + (self.lambdas(state, actions) * adv).sum(dim=-1)  # (B,)


class QuantileMixture(nn.Module):
    """DMIX's mixer (DFAC, Sun et al. 2021): the agents' return distributions, given as quantiles
    ``z (B, n, N)``, are split into their means Q_i = E[Z_i] and their shapes Z_i − Q_i; the means are mixed by
    QMIX's monotone mixer and the shapes by a state-weighted sum with non-negative weights:

        Z_tot(S) = M(Q_1, ..., Q_n; S) + Σ_i w_i(S)·(Z_i − Q_i)      -> (B, N)

    so E[Z_tot] = M(Q; S) (the shape part has mean 0) and the greedy joint action is the agents' greedy actions on
    their means (IGM through the monotone mean mixer). Both parts are ``Mixer``s, so their shapes are checked.
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_hidden: int = 64):
        super().__init__()
        self.mean_mixer = HyperMonotoneMixer(n_agents, state_dim, embed_dim=embed_dim,
                                             hypernet_hidden=hypernet_hidden, normalize=False, bias=True)
        self.shape_mixer = StateWeightedSumMixer(n_agents, state_dim, hypernet_hidden=hypernet_hidden)

    def forward(self, z: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3:
            raise ValueError(f"QuantileMixture expects z of shape (B, n_agents, n_quantiles), got {tuple(z.shape)}")
        B, n, N = z.shape
        q = z.mean(dim=-1)  # (B, n)
        mean_tot = self.mean_mixer(q, state)  # (B,)
        dev = (z - q.unsqueeze(-1)).permute(0, 2, 1).reshape(B * N, n)  # (B, n, N) -> (B, N, n) -> (B·N, n)
        rep_state = state.unsqueeze(1).expand(B, N, state.shape[-1]).reshape(B * N, -1)  # (B·N, s)
        shape_tot = self.shape_mixer(dev, rep_state).view(B, N)  # (B·N,) -> (B, N)
        return mean_tot.unsqueeze(-1) + shape_tot  # (B, N)


# "none": no mixer, i.e. independent learners (IIQ); the loss then sums over agents.
MIXERS = {"none": None, "vdn": SumMixer, "mifq": HyperMonotoneMixer}


def make_mixer(name: str, n_agents: int, state_dim: Optional[int], **kwargs) -> Optional[Mixer]:
    """Build the mixer registered as ``name`` (``None`` for ``"none"``); kwargs go to its constructor."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; choose one of {sorted(MIXERS)}")
    cls = MIXERS[name]
    return None if cls is None else cls(n_agents, state_dim, **kwargs)
