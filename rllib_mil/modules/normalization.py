"""Running normalisation of value targets (MAPPO's value normalisation, Yu et al. 2022 §"PopArt/ValueNorm").

The critic predicts values in normalised units; ``denormalize`` turns its output into returns for GAE, and the
value loss compares it with ``normalize(value_targets)``. Statistics are exponential moving averages with bias
correction (as MAPPO's ValueNorm), kept as buffers so they follow ``.to(device)`` and live in checkpoints.
"""
from __future__ import annotations

import torch
from torch import nn


class ValueNormalizer(nn.Module):
    """``update(x)`` with a batch of targets, then ``normalize`` / ``denormalize`` elementwise (any shape)."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        if not 0.0 < beta < 1.0:
            raise ValueError(f"ValueNormalizer beta must be in (0, 1), got {beta}")
        self.beta, self.epsilon = beta, epsilon
        # float64: a beta this close to 1 loses the update in float32 round-off.
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).reshape(-1)
        if x.numel() == 0:
            return
        self.running_mean.mul_(self.beta).add_(x.mean() * (1.0 - self.beta))
        self.running_mean_sq.mul_(self.beta).add_((x**2).mean() * (1.0 - self.beta))
        self.debiasing_term.mul_(self.beta).add_(1.0 - self.beta)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bias-corrected mean and std (0 and 1 before the first update)."""
        if self.debiasing_term.item() == 0.0:
            return self.running_mean.new_zeros(()), self.running_mean.new_ones(())
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean**2).clamp(min=1e-2)
        return mean, var.sqrt()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean_std()
        return ((x - mean.to(x.dtype)) / std.to(x.dtype)).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean_std()
        return (x * std.to(x.dtype) + mean.to(x.dtype)).to(x.dtype)
