"""Losses shared by the value-decomposition algorithms (QMIX, QPLEX, DMIX) and their IGM-DA mode, as pure functions.

    double-Q target   a*_i = argmax_a Q_i(o_i', a) (online net, available actions), evaluated by the target net
    TD target         y    = r + γ(1 − terminated)·Q_tot^target(S', a*)                   (truncation bootstraps)
    TD loss           L_TD = mean (Q_tot(S, a) − y)²                                         (QMIX, QPLEX)
    quantile loss     L_QR = QR-DQN's quantile Huber loss between Z_tot(S, a) and r + γ(1 − d)·Z_tot^target(S', a*)  (DMIX)
    teach loss (DA)   L_T  = mean over agents and available actions (q_i(τ_i, ·) − onehot(argmax Q_i^E(s_i, ·)))²
                             (IGM-DA's supervised step, eq. 10–11: the local q converges to the average of the
                             expert's greedy indicator over the states that look alike), or the cross-entropy,
                      or "q": mean over agents and available actions (q_i(τ_i, ·) − Q_i^E(s_i, ·))² (value
                             distillation: q converges to E[Q_i^E | τ_i], so the learner's greedy action is the one
                             with the best expected expert value over the states that look alike, not the expert's
                             most frequent greedy action there).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from rllib_mil.modules.soft import greedy_actions, masked_q

TEACH_LOSSES = ("mse", "ce", "q")
BOOTSTRAP_ACTIONS = ("td", "learner")  # whose greedy actions the TD target bootstraps with (ValueDecompositionConfig)


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_tot: torch.Tensor, gamma: float) -> torch.Tensor:
    """``r + γ(1 − terminated)·next_tot``: ``reward``, ``terminated (B,)`` and ``next_tot (B,)`` or ``(B, N)``
    (quantiles) -> the shape of ``next_tot``, without gradient."""
    not_done = 1.0 - terminated.to(next_tot.dtype)  # (B,)
    if next_tot.dim() == 2:  # (B, N): broadcast the per-row scalars over quantiles
        return (reward.to(next_tot.dtype).unsqueeze(-1) + gamma * not_done.unsqueeze(-1) * next_tot).detach()
    return (reward.to(next_tot.dtype) + gamma * not_done * next_tot).detach()


def td_loss(q_tot: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error: ``q_tot (B,)``, ``target (B,)`` -> ()."""
    if q_tot.shape != target.shape:
        raise ValueError(f"td_loss: q_tot {tuple(q_tot.shape)} and target {tuple(target.shape)} must match")
    return (q_tot - target.detach()).pow(2).mean()


def gather_actions(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q (B, n, A, ...)`` at ``actions (B, n)`` -> ``(B, n, ...)`` (quantile dims after A are kept)."""
    idx = actions.long().view(*actions.shape, 1, *([1] * (q.dim() - 3)))  # (B, n, 1, 1...)
    idx = idx.expand(*actions.shape, 1, *q.shape[3:])  # (B, n, 1, ...)
    return q.gather(2, idx).squeeze(2)


def masked_max(q: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """max over available actions: ``(B, n, A) -> (B, n)``."""
    return masked_q(q, mask).max(dim=-1).values


def next_actions(q_next_online: torch.Tensor, q_next_target: torch.Tensor, mask_next: torch.Tensor,
                 double_q: bool) -> torch.Tensor:
    """a* for the bootstrap: greedy in the online net's scores (double Q) or the target's: ``(B, n, A)`` -> ``(B, n)``."""
    return greedy_actions((q_next_online if double_q else q_next_target).detach(), mask_next)


def quantile_huber_loss(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """QR-DQN's loss: ``pred (B, N)`` quantiles at levels ``taus (N,)``, ``target (B, M)`` samples of the target
    distribution -> (). Each pair (i, j) contributes |τ_i − 1[δ_ij < 0]|·Huber_κ(δ_ij)/κ with δ_ij = target_j − pred_i;
    summed over i, averaged over j and the batch."""
    if pred.dim() != 2 or target.dim() != 2 or pred.shape[0] != target.shape[0] or taus.shape != pred.shape[1:]:
        raise ValueError(f"quantile_huber_loss: pred (B, N), target (B, M), taus (N,); got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}, {tuple(taus.shape)}")
    delta = target.detach().unsqueeze(1) - pred.unsqueeze(2)  # (B, N, 1) vs (B, 1, M) -> (B, N, M)
    huber = F.huber_loss(pred.unsqueeze(2).expand_as(delta), target.detach().unsqueeze(1).expand_as(delta),
                         reduction="none", delta=kappa)  # (B, N, M)
    weight = (taus.view(1, -1, 1) - (delta.detach() < 0).to(pred.dtype)).abs()  # (B, N, M)
    return (weight * huber / kappa).sum(dim=1).mean()


def teach_loss(q_learner: torch.Tensor, q_expert: torch.Tensor, mask: torch.Tensor, kind: str = "mse"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """IGM-DA's imitation step: the learner agents' scores ``q_learner (B, n, A)`` (local observations) towards the
    expert agents' greedy action (``q_expert (B, n, A)``, global state, no gradient), under ``mask (B, n, A)``.

    "mse" (the authors' code): mean over available entries of (q − onehot(a^E))²; unavailable actions contribute
    nothing. "ce": mean over agent rows of −log softmax(q over available actions)(a^E). "q": mean over available
    entries of (q − Q^E)², the expert's values themselves (not in the paper; see the module docstring).
    Returns (loss, agreement): the fraction of agent rows where the learner's greedy action is the expert's.
    """
    if kind not in TEACH_LOSSES:
        raise ValueError(f"teach loss must be one of {TEACH_LOSSES}, got {kind!r}")
    if q_learner.shape != q_expert.shape or q_learner.shape != mask.shape:
        raise ValueError(f"teach_loss: q_learner {tuple(q_learner.shape)}, q_expert {tuple(q_expert.shape)} and "
                         f"mask {tuple(mask.shape)} must match")
    a_e = greedy_actions(q_expert.detach(), mask)  # (B, n)
    avail = (mask > 0).to(q_learner.dtype)  # (B, n, A)
    if kind == "ce":
        logp = torch.log_softmax(masked_q(q_learner, mask), dim=-1)  # (B, n, A)
        loss = -logp.gather(-1, a_e.unsqueeze(-1)).mean()
    else:  # squared error on the available entries, towards the expert's one-hot argmax ("mse") or its values ("q")
        goal = F.one_hot(a_e, q_learner.shape[-1]).to(q_learner.dtype) if kind == "mse" else q_expert.detach()
        loss = ((q_learner - goal).pow(2) * avail).sum() / avail.sum().clamp(min=1.0)  # goal: (B, n, A)
    agreement = (greedy_actions(q_learner.detach(), mask) == a_e).to(q_learner.dtype).mean()
    return loss, agreement
