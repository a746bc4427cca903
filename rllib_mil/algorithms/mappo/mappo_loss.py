"""MAPPO loss (Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games") as pure
functions of tensors.

With a shared team reward every agent gets the same advantage Â (GAE on the centralized critic), and each
agent's probability ratio is clipped on its own (MAPPO eq. 1, per agent i):

    ρ_i      = π_θ(a_i | o_i) / π_old(a_i | o_i)
    L^clip   = mean over valid steps and agents of  min(ρ_i Â, clip(ρ_i, 1 − ε, 1 + ε) Â)
    L^V      = mean over valid steps of Huber_δ(V_φ(s) − norm(R̂))        (value normalisation, MAPPO §4.1)
    H        = mean over valid steps and agents of the per-agent entropy
    loss     = −L^clip + c_V · min(L^V per step, vf_clip) − c_H · H  (+ β · KL(π_old ‖ π_θ) if used)

Clipping the joint ratio Π_i ρ_i instead would make its variance grow with the number of agents.

Positive signalling (Eccles et al. 2019, "Biases for Emergent Communication in Multi-Agent Reinforcement
Learning", §3.1), an option for envs whose action includes a message (``action_factors``): with π_M(m | o) the
marginal of the message factor,

    π̄_M     = mean over valid steps and agents of π_M(· | o)                      (the minibatch's average speaker)
    L^ps     = −H(π̄_M) + (H(π_M(· | o)) − H_target)²   (H(π_M(·|o)) averaged over valid steps and agents)

H(π̄_M) − mean H(π_M(·|o)) is the minibatch estimate of the mutual information I(o; m): minimising L^ps makes
the words depend on what the speaker sees, which the policy gradient alone does not do while the listener still
ignores them (the compromise point of the communication game). H_target keeps each word choice stochastic enough
to explore.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def agent_log_probs(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-agent log π(a_i) and log-probabilities of all actions: ``(..., n, A), (..., n) -> (..., n), (..., n, A)``."""
    log_p = F.log_softmax(logits, dim=-1)  # (..., n, A)
    logp_taken = log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (..., n, 1) -> (..., n)
    return logp_taken, log_p


def _masked_mean(x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over all entries; ``valid (...)`` (bool) selects rows, broadcasting over x's trailing dims."""
    if valid is None:
        return x.mean()
    w = valid.to(x.dtype).reshape(*valid.shape, *([1] * (x.dim() - valid.dim()))).expand_as(x)
    return (x * w).sum() / w.sum().clamp(min=1.0)


def factor_log_probs(log_p: torch.Tensor, factors: list[int], k: int) -> torch.Tensor:
    """Log-marginal of factor k of a factored flat action: ``(..., A) -> (..., factors[k])``.

    The flat action is ``a = a_0 + f_0 * (a_1 + f_1 * ...)`` (first factor fastest, as ``FactoredLogits``), so in
    row-major order the flat axis unflattens to ``(f_{K-1}, ..., f_0)``: factor k sits at position K-1-k.
    """
    K = len(factors)
    x = log_p.unflatten(-1, tuple(reversed(factors)))  # (..., A) -> (..., f_{K-1}, ..., f_0)
    others = [p - K for p in range(K) if p != K - 1 - k]  # the other factors' axes (negative dims)
    return torch.logsumexp(x, dim=others)  # (..., f_k)


def positive_signalling_loss(
    msg_log_p: torch.Tensor, valid: Optional[torch.Tensor], target_entropy: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L^ps (module docstring): ``msg_log_p (..., n, M)``, ``valid (...)`` bool or None.

    Returns ``(loss, H(π̄_M), mean H(π_M(·|o)))``.
    """
    probs = msg_log_p.exp()  # (..., n, M)
    row_entropy = -(probs * msg_log_p).sum(-1)  # (..., n)
    cond_entropy = _masked_mean(row_entropy, valid)
    flat = probs.reshape(-1, probs.shape[-1])  # (rows * n, M)
    if valid is None:
        mean_policy = flat.mean(0)  # (M,)
    else:
        w = valid.to(probs.dtype).unsqueeze(-1).expand(probs.shape[:-1]).reshape(-1, 1)  # (rows * n, 1)
        mean_policy = (flat * w).sum(0) / w.sum().clamp(min=1.0)  # (M,)
    mean_entropy = -(mean_policy * torch.log(mean_policy.clamp(min=1e-12))).sum()
    loss = -mean_entropy + (cond_entropy - target_entropy) ** 2
    return loss, mean_entropy, cond_entropy


def mappo_loss(
    *,
    logits: torch.Tensor,
    old_logits: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    value_targets: torch.Tensor,
    valid: Optional[torch.Tensor],
    clip_param: float,
    vf_loss_coeff: float,
    entropy_coeff: float,
    huber_delta: Optional[float],
    vf_clip_param: float = float("inf"),
    kl_coeff: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns ``(loss, terms)``; ``terms`` holds detached scalars for logging.

    ``logits`` / ``old_logits (..., n, A)``: current and behaviour per-agent logits, unavailable actions already
    masked to a large negative number (so they carry no probability). ``actions (..., n)``. ``advantages``,
    ``values`` (critic output, normalised units) and ``value_targets`` (same units) are ``(...)`` with the team
    advantage or ``(..., n)`` with per-agent credit (each agent's own advantage, value and target); ``valid`` (bool;
    ``None`` = all rows) is ``(...)``, where ``...`` is (B,) or (B, T) for recurrent batches.
    """
    if logits.shape != old_logits.shape or logits.shape[:-1] != actions.shape:
        raise ValueError(
            f"mappo_loss: logits {tuple(logits.shape)}, old_logits {tuple(old_logits.shape)} must be (..., n, A) "
            f"and actions {tuple(actions.shape)} (..., n)"
        )
    lead = actions.shape[:-1]
    # Team credit: one advantage and value per step (...); agent credit: one per agent (..., n).
    shapes = (lead, actions.shape)
    for name, t in (("advantages", advantages), ("values", values), ("value_targets", value_targets)):
        if t.shape not in shapes or t.shape != advantages.shape:
            raise ValueError(f"mappo_loss: advantages, values and value_targets must all have shape {tuple(lead)} "
                             f"(team credit) or {tuple(actions.shape)} (agent credit), got {name} {tuple(t.shape)}")

    logp, log_p = agent_log_probs(logits, actions)  # (..., n), (..., n, A)
    with torch.no_grad():
        old_logp, old_log_p = agent_log_probs(old_logits, actions)  # (..., n), (..., n, A)
    ratio = torch.exp(logp - old_logp)  # (..., n): one ratio per agent
    # team: (...) -> (..., 1), one advantage shared by all agents; agent credit: already (..., n)
    adv = advantages if advantages.shape == actions.shape else advantages.unsqueeze(-1)
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1.0 - clip_param, 1.0 + clip_param) * adv)  # (..., n)
    policy_loss = -_masked_mean(surrogate, valid)

    probs = log_p.exp()  # (..., n, A); masked actions have probability 0 (their log-prob stays finite)
    entropy = -(probs * log_p).sum(-1)  # (..., n)
    mean_entropy = _masked_mean(entropy, valid)

    if huber_delta is None:
        vf = 0.5 * (values - value_targets) ** 2  # (...) or (..., n)
    else:
        vf = F.huber_loss(values, value_targets, reduction="none", delta=huber_delta)
    vf_loss = _masked_mean(torch.clamp(vf, max=vf_clip_param), valid)

    old_probs = old_log_p.exp()  # (..., n, A)
    kl = (old_probs * (old_log_p - log_p)).sum(-1)  # (..., n): KL(π_old ‖ π_θ) per agent
    mean_kl = _masked_mean(kl, valid)

    loss = policy_loss + vf_loss_coeff * vf_loss - entropy_coeff * mean_entropy
    if kl_coeff:
        loss = loss + kl_coeff * mean_kl
    with torch.no_grad():
        clipped = ((ratio - 1.0).abs() > clip_param).to(ratio.dtype)
        terms = {
            "policy_loss": policy_loss.detach(),
            "vf_loss": vf_loss.detach(),
            "entropy": mean_entropy.detach(),
            "mean_kl": mean_kl.detach(),
            "clip_fraction": _masked_mean(clipped, valid),
            "loss": loss.detach(),
        }
    return loss, terms
