"""Magnitude importance: S_ij = |W_ij| (no data)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from excise.data import Batch
from excise.scoring.base import weight_key, weight_of


def magnitude_scores(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch] | None = None
) -> dict[str, torch.Tensor]:
    """S = |W| in float32 on CPU, in the parameter's own shape."""
    del model, batches
    return {weight_key(n): weight_of(m).detach().float().abs().cpu() for n, m in modules.items()}
