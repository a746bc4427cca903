"""Small pieces shared by the algorithm learners."""
from __future__ import annotations

from typing import Callable, Mapping

import torch


def set_provided(config, **values) -> None:
    """Set each setting given a value (RLlib's ``training(...)`` convention: ``NotProvided`` = leave it)."""
    from ray.rllib.algorithms.algorithm_config import NotProvided

    for name, value in values.items():
        if value is not NotProvided:
            setattr(config, name, value)


class LastUpdateMetrics:
    """Learner mixin: an iteration's loss metrics come from its last update. The training loops pass RLlib's
    ``_no_metrics_reduce=True`` to every update but the last (imitation.replay_updates / expert_only_updates), and
    the metrics are logged with window 1, so only the last update's values were ever reported; computing and
    logging them on the other updates cost about 1.5 ms of a 20 ms update at 128 rows (docs/performance.md)."""

    _metrics_due = True

    def update(self, *args, _no_metrics_reduce: bool = False, **kwargs):
        self._metrics_due = not _no_metrics_reduce
        return super().update(*args, _no_metrics_reduce=_no_metrics_reduce, **kwargs)

    def log_loss_metrics(self, module_id: str, metrics: Callable[[], Mapping[str, object]]) -> None:
        """Log ``metrics()`` (computed without gradient) under ``module_id``, on the update that reports."""
        if self._metrics_due:
            with torch.no_grad():
                self.metrics.log_dict(dict(metrics()), key=module_id, window=1)


def raise_if_not_finite(algo: str, loss: torch.Tensor, terms: Mapping[str, torch.Tensor], fix: str) -> None:
    """A non-finite loss stops training with the loss terms and a fix named (checkpoints already written stay)."""
    if torch.isfinite(loss):
        return
    parts = ", ".join(f"{k} {float(v):.4g}" for k, v in terms.items() if k != "loss")
    raise FloatingPointError(
        f"{algo} loss is not finite ({float(loss.detach())}; {parts}). {fix} Checkpoints already written are kept and "
        "can be restored."
    )


def interpolation_gradient_penalty(fn, x_a: torch.Tensor, x_b: torch.Tensor, generator=None) -> torch.Tensor:
    """WGAN-GP penalty E[(‖∇_x Σ fn(x)‖₂ − 1)²] on rows x interpolated between paired rows of ``x_a`` and ``x_b``
    (same shape ``(B, ..., d)``; the norm runs over the last dim, so each agent row of a shared per-agent net
    gets its own). Keeps a learned reward or discriminator from separating the two kinds of rows by memorising
    the few expert ones."""
    if x_a.shape != x_b.shape:
        raise ValueError(f"gradient penalty: paired rows must have the same shape, got {tuple(x_a.shape)} and "
                         f"{tuple(x_b.shape)}")
    B = x_a.shape[0]
    eps = torch.rand((B,) + (1,) * (x_a.dim() - 1), generator=generator, device=x_a.device).to(x_a.dtype)
    x = (eps * x_a + (1 - eps) * x_b).detach().requires_grad_(True)  # (B, ..., d)
    (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)  # (B, ..., d)
    return (grad.norm(dim=-1) - 1.0).pow(2).mean()
