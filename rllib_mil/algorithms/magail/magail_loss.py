"""MAGAIL's discriminator loss and imitation reward as pure functions of tensors (Song et al. 2018, the
decentralized-discriminator form the MIFQ paper compares against, §5.3).

D(x) = σ(ℓ(x)) is the probability that the row x = (o_i, a_i) (or (S, A) with the centralized option) comes
from the expert. The discriminator minimises the cross-entropy

    L_D = −E_expert[log D] − E_policy[log(1 − D)] = E_expert[softplus(−ℓ)] + E_policy[softplus(ℓ)]     (1)

and the policy is trained (by MAPPO) on the imitation reward in place of the env reward:

    "gail":  r = −log(1 − D) = softplus(ℓ)   ≥ 0   (GAIL's form, the issue's default)                       (2)
    "airl":  r = log D − log(1 − D) = ℓ            (AIRL's form; no survival bias in episodes of varying length)

Logits carry a trailing agent axis ``k``: k = n for the per-agent discriminator, k = 1 for the centralized one.
``weight (..., k)`` is 1 where the row counts: agents without a choice (dead or padded, a single available
action) say nothing about the policy and are left out of both the loss and the reward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

REWARD_TYPES = ("gail", "airl")


def _weighted_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp(min=1.0)


def discriminator_loss(
    logits_e: torch.Tensor, logits_p: torch.Tensor, weight_e: torch.Tensor, weight_p: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. (1). ``logits_e (Be, k)``, ``logits_p (Bp, k)``, weights of the same shapes. Returns ``(loss, terms)``
    with detached D(expert), D(policy) and the accuracy at threshold ½."""
    if logits_e.dim() != 2 or logits_p.dim() != 2 or logits_e.shape[1] != logits_p.shape[1]:
        raise ValueError(f"discriminator_loss: logits must be (B, k) with the same k, got {tuple(logits_e.shape)} "
                         f"and {tuple(logits_p.shape)}")
    if weight_e.shape != logits_e.shape or weight_p.shape != logits_p.shape:
        raise ValueError("discriminator_loss: each weight must have its logits' shape")
    loss_e = _weighted_mean(F.softplus(-logits_e), weight_e)  # −log D on expert rows
    loss_p = _weighted_mean(F.softplus(logits_p), weight_p)  # −log(1 − D) on policy rows
    with torch.no_grad():
        acc = (_weighted_mean((logits_e > 0).to(logits_e.dtype), weight_e)
               + _weighted_mean((logits_p < 0).to(logits_p.dtype), weight_p)) / 2
        terms = {
            "disc_loss": (loss_e + loss_p).detach(),
            "disc_expert_prob": _weighted_mean(torch.sigmoid(logits_e), weight_e),
            "disc_policy_prob": _weighted_mean(torch.sigmoid(logits_p), weight_p),
            "disc_accuracy": acc,
        }
    return loss_e + loss_p, terms


def imitation_reward(logits: torch.Tensor, weight: torch.Tensor, kind: str = "gail") -> torch.Tensor:
    """Eq. (2), one team reward per row: ``(..., k) -> (...)``, the weighted mean over the agent axis (the team
    env's reward is the mean of the agents' rewards). Rows with no weight get 0."""
    if kind == "gail":
        r = F.softplus(logits)
    elif kind == "airl":
        r = logits
    else:
        raise ValueError(f"unknown imitation reward {kind!r}; choose one of {REWARD_TYPES}")
    return (r * weight).sum(dim=-1) / weight.sum(dim=-1).clamp(min=1.0)  # (..., k) -> (...)
