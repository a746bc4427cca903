"""Small pieces shared by the algorithm learners."""
from __future__ import annotations

from typing import Mapping

import torch


def raise_if_not_finite(algo: str, loss: torch.Tensor, terms: Mapping[str, torch.Tensor], fix: str) -> None:
    """A non-finite loss stops training with the loss terms and a fix named (checkpoints already written stay)."""
    if torch.isfinite(loss):
        return
    parts = ", ".join(f"{k} {float(v):.4g}" for k, v in terms.items() if k != "loss")
    raise FloatingPointError(
        f"{algo} loss is not finite ({float(loss.detach())}; {parts}). {fix} Checkpoints already written are kept and "
        "can be restored."
    )
