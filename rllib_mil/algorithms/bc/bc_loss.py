"""Behaviour cloning's loss as a pure function of tensors."""
from __future__ import annotations

import torch

from rllib_mil.modules.soft import masked_q


def _check(name: str, t: torch.Tensor, shape: tuple) -> None:
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = str(tuple("?" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"bc_term: {name} must have shape {want}, got {tuple(t.shape)}")


def bc_term(q_e: torch.Tensor, actions_e: torch.Tensor, mask_e: torch.Tensor, temperature: float) -> torch.Tensor:
    """Behaviour-cloning term on expert rows: mean negative log-likelihood of the expert's actions under
    softmax(Q_i/τ) restricted to available actions, τ = ``temperature``. It is BC's loss (τ = 1, scores =
    logits) and MIFQ's optional ``bc_coef`` term (τ = ``bc_temperature``, scores = soft Q values; not in the
    paper). With τ above the soft-Q temperature α it pushes *every* other available action down at expert states
    until it sits about τ·log(A) below the expert's, also actions the policy never takes.

    ``q_e (Be, n, A)``, ``actions_e (Be, n)`` int, ``mask_e (Be, n, A)``. Agents with a single available action
    (dead or padded agents) carry no choice and are left out of the mean.
    """
    _check("q_e", q_e, (None, None, None))
    Be, n, A = q_e.shape
    _check("actions_e", actions_e, (Be, n))
    _check("mask_e", mask_e, (Be, n, A))
    logp = torch.log_softmax(masked_q(q_e / temperature, mask_e), dim=-1)  # (Be, n, A)
    nll = -logp.gather(-1, actions_e.long().unsqueeze(-1)).squeeze(-1)  # (Be, n, 1) -> (Be, n)
    choice = ((mask_e > 0).sum(dim=-1) > 1).to(q_e.dtype)  # (Be, n): 1 where the agent had a real choice
    return (nll * choice).sum() / choice.sum().clamp(min=1.0)
