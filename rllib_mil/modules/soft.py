"""Masked soft-Q helpers (pure functions).

Masks are float (or bool) tensors shaped like ``q`` (``(..., A)``) with 1 = available, 0 = not (padding, dead
agents). Every row must have at least one available action (the team env guarantees the no-op for dead agents);
a row with none gets the fill value instead of a meaningful result.

MIFQ's local soft value is V_i(o_i) = α·log Σ_a exp(Q_i(o_i, a)/α) over available actions (paper §4.2.1, with the
temperature α that IQ-Learn uses; the paper writes α = 1), and its policy is softmax(Q_i/α) (eq. 4).
"""
from __future__ import annotations

from typing import Optional, Union

import torch

Alpha = Union[float, torch.Tensor]


def _fill_value(dtype: torch.dtype) -> float:
    # Large but finite: -inf would give NaN gradients (0 * inf) and NaN logsumexp on fully masked rows.
    # Half precision cannot hold -1e9, so stay well inside the dtype's range.
    return max(-1e9, torch.finfo(dtype).min / 2)


def _check_mask(q: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
    if mask is not None and mask.shape != q.shape:
        raise ValueError(f"mask must have the shape of q {tuple(q.shape)}, got {tuple(mask.shape)}")


def _check_alpha(alpha: Alpha) -> None:
    if not isinstance(alpha, torch.Tensor) and not alpha > 0:
        raise ValueError(f"alpha (temperature) must be > 0, got {alpha}")


def masked_q(q: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``q`` with unavailable actions replaced by a large negative finite number. ``mask=None``: all available."""
    if mask is None:
        return q
    _check_mask(q, mask)
    # torch.where: masked entries get zero gradient, available ones pass theirs through unchanged.
    return torch.where(mask > 0, q, torch.full_like(q, _fill_value(q.dtype)))


def soft_value(q: torch.Tensor, mask: Optional[torch.Tensor], alpha: Alpha = 1.0) -> torch.Tensor:
    """V = α·logsumexp(Q/α) over available actions: ``(..., A) -> (...)``, e.g. ``(B, n, A) -> (B, n)``.

    Tends to max over available actions as α → 0. Convex in Q (log-sum-exp, Lemma A.1).
    """
    _check_alpha(alpha)
    # Mask after scaling so the fill value stays finite for small α (fill/α could overflow to -inf).
    return alpha * torch.logsumexp(masked_q(q / alpha, mask), dim=-1)


def with_policy_prior(q: torch.Tensor, prior_logits: torch.Tensor, mask: Optional[torch.Tensor],
                      scale: float) -> torch.Tensor:
    """Scores of the KL-regularised soft-Q policy π_i ∝ π0_i(a|o)^β·exp(Q_i(o, a)/α): ``Q + scale·log π0`` with
    ``scale`` = α·β and π0 = softmax of the prior logits over available actions, no gradient into the prior
    (``(..., A)`` each). Its soft value α·logsumexp(scores/α) = α·log Σ_a π0^β exp(Q/α) is V_i of the
    KL-regularised soft Bellman equation, and softmax(scores/α) is the policy (MIFQConfig.policy_prior)."""
    _check_mask(q, mask)
    logp0 = torch.log_softmax(masked_q(prior_logits.detach(), mask), dim=-1)  # (..., A)
    if mask is not None:
        # Unavailable actions keep q (masked later by every consumer); only their logp0 would be the fill value.
        logp0 = torch.where(mask > 0, logp0, torch.zeros_like(logp0))
    return q + scale * logp0


def boltzmann_sample(
    q: torch.Tensor,
    mask: Optional[torch.Tensor],
    alpha: Alpha = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Sample a ~ softmax(Q/α) restricted to available actions: ``(..., A) -> (...)`` int64.

    An unavailable action has probability exactly 0, whatever its Q.
    """
    _check_alpha(alpha)
    probs = torch.softmax(masked_q(q.detach() / alpha, mask), dim=-1)  # (..., A)
    if mask is not None:
        # exp(fill - max) already underflows to 0; multiplying by the mask makes it exact by construction.
        probs = probs * (mask > 0).to(probs.dtype)
    lead = probs.shape[:-1]
    flat = probs.reshape(-1, probs.shape[-1])  # (N, A): multinomial wants 1-D or 2-D input
    actions = torch.multinomial(flat, num_samples=1, generator=generator)  # (N, 1)
    return actions.reshape(lead)  # (...)


def action_logp(q: torch.Tensor, mask: Optional[torch.Tensor], alpha: Alpha, actions: torch.Tensor) -> torch.Tensor:
    """log softmax(Q/α)(a) over available actions for the given actions: ``(..., A), (...) -> (...)``."""
    _check_alpha(alpha)
    logp = torch.log_softmax(masked_q(q / alpha, mask), dim=-1)  # (..., A)
    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (..., 1) -> (...)


def greedy_actions(q: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """argmax of Q over available actions: ``(..., A) -> (...)`` int64."""
    return masked_q(q, mask).argmax(dim=-1)


def epsilon_greedy(
    q: torch.Tensor,
    mask: Optional[torch.Tensor],
    epsilon: float,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ε-greedy under the mask: ``(..., A) -> (actions (...) int64, log μ(a) (...))``.

    With probability ε an action uniform over the available ones, otherwise the masked argmax; the log-probability
    of the chosen action under that mixture is returned with it (importance weights, diagnostics).
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    avail = torch.ones_like(q) if mask is None else (mask > 0).to(q.dtype)  # (..., A)
    greedy = greedy_actions(q, mask)  # (...)
    uniform = avail / avail.sum(dim=-1, keepdim=True)  # (..., A)
    flat = uniform.reshape(-1, q.shape[-1])  # (N, A)
    random = torch.multinomial(flat, num_samples=1, generator=generator).reshape(greedy.shape)  # (...)
    explore = torch.rand(greedy.shape, generator=generator, device=q.device) < epsilon  # (...)
    actions = torch.where(explore, random, greedy)
    # μ(a) = ε / |avail| + (1 − ε)·1[a = greedy]
    p = epsilon * uniform.gather(-1, actions.unsqueeze(-1)).squeeze(-1) + (1.0 - epsilon) * (actions == greedy).to(q.dtype)
    return actions, p.log()
