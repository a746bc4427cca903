"""MAMQL's reward recovery as a pure function of tensors (mamql-notes.md): each agent's reward network R_i(s, a)
is fitted by mean-squared error to the reward its marginalized critic implies, r_i = Q̄_i(s, a_i) − γ(1−d)·V̄_i(s').
The critic's own loss is the per-agent inverse soft-Q loss (``mifq_loss`` without a mixer, i.e. IIQ's form)."""
import torch


def reward_recovery_loss(r_pred: torch.Tensor, q_taken: torch.Tensor, v_next: torch.Tensor, done: torch.Tensor,
                         gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``r_pred (B, n)`` = R_i(s, a); ``q_taken (B, n)`` = Q̄_i(s, a_i); ``v_next (B, n)`` = V̄_i(s'); ``done (B,)``
    1.0 where terminated. Returns ``(mean over rows and agents of (R_i − r_i)², the targets r_i (B, n))``; the
    targets carry no gradient, so this loss trains the reward networks only."""
    if not (r_pred.shape == q_taken.shape == v_next.shape and done.shape == r_pred.shape[:1]):
        raise ValueError(f"reward_recovery_loss: r_pred {tuple(r_pred.shape)}, q_taken {tuple(q_taken.shape)} and "
                         f"v_next {tuple(v_next.shape)} must be (B, n) and done {tuple(done.shape)} (B,)")
    target = (q_taken - gamma * (1.0 - done.to(q_taken.dtype)).unsqueeze(-1) * v_next).detach()  # (B, n)
    return (r_pred - target).pow(2).mean(), target
