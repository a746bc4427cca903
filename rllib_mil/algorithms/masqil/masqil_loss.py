"""MASQIL loss (SQIL for teams) as a pure function of tensors.

SQIL (Reddy et al. 2020) replaces the env reward by a constant: r = 1 on expert transitions, r = 0 on the agent's
own (replay) transitions, and runs soft Q-learning. For a team the per-agent soft Q values are mixed by the same
monotone state-conditioned mixer as MIFQ (QMIX-style), so the TD error is on the joint values:

    Q^tot(S, A)  = M(Q_1(o_1, a_1), …, Q_n(o_n, a_n); S)
    V^tot(S')    = M'(V_1(o_1'), …, V_n(o_n'); S'),    V_i = α·logsumexp(Q'_i / α) over available actions
    y            = r + γ(1 − done)·V^tot(S')            (no gradient: target Q net Q' and target mixer M')
    L            = mean over expert ∪ replay rows of (Q^tot(S, A) − y)²
"""
from __future__ import annotations

import torch


def soft_td_loss(q_tot: torch.Tensor, v_tot_next: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
                 gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean squared soft TD error on joint values. All inputs ``(B,)``; ``v_tot_next`` and the target carry no
    gradient. Returns ``(loss, terms)`` with detached logging scalars."""
    for name, t in (("v_tot_next", v_tot_next), ("reward", reward), ("done", done)):
        if t.shape != q_tot.shape:
            raise ValueError(f"soft_td_loss: {name} must have the shape of q_tot {tuple(q_tot.shape)}, got "
                             f"{tuple(t.shape)}")
    target = (reward + gamma * (1.0 - done.to(q_tot.dtype)) * v_tot_next).detach()  # (B,)
    td = q_tot - target  # (B,)
    loss = td.pow(2).mean()
    return loss, {"loss": loss.detach(), "td_error_abs_mean": td.detach().abs().mean(),
                  "q_tot_mean": q_tot.detach().mean(), "target_mean": target.mean()}
