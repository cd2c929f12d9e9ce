"""Structured (row-wise) Wanda: one importance per output neuron of each Linear.

S_i = sum_j |W_ij| * ||X_j||_2, the sum of the weight-level Wanda scores of output row i (for a
GPT-2 ``Conv1D``, stored (in, out), the sum over the column of output i). Unit ``neuron``: a score
of shape (out_features,) keyed by the weight's parameter name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from excise.data import Batch
from excise.models.adapters import weight_in_axis
from excise.scoring.wanda import wanda_scores


def wanda_row_scores(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch], positions: str = "response"
) -> dict[str, torch.Tensor]:
    """{weight name: (out_features,) float32} with S_i = sum_j |W_ij| ||X_j||_2."""
    weight = wanda_scores(model, modules, batches, positions)
    out: dict[str, torch.Tensor] = {}
    for name, mod in modules.items():
        key = f"{name}.weight"
        out[key] = weight[key].sum(dim=weight_in_axis(mod))
    return out
