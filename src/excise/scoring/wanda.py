"""Wanda importance (Sun et al. 2023): S_ij = |W_ij| * ||X_j||_2.

X are the inputs of the layer at the response-token positions of the calibration set (positions
whose own token is a response token, padding and prompt excluded; the reference's convention).
``positions="next"`` takes the positions whose *next* token is a response token instead (those the
loss is computed at). One forward pass per batch with pre-hooks; only the sum of squares per input
feature is kept (streamed, float32), no activation is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from excise.data import Batch
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import weight_in_axis
from excise.scoring.base import (
    accepts_logits_to_keep,
    eval_mode,
    input_device,
    scored_positions,
    weight_key,
    weight_of,
)
from excise.utils import progress


def input_sq_norms(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch], positions: str = "response"
) -> dict[str, torch.Tensor]:
    """Sum over the scored positions of x_j^2 for the input x of every module (float32, module's device)."""
    sq: dict[str, torch.Tensor] = {}
    current: dict[str, torch.Tensor] = {}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        pos = current["pos"]
        if pos.device != x.device:
            pos = pos.to(x.device)
        if x.numel() // x.shape[-1] != pos.numel():
            raise ExciseError(
                f"module '{name}' does not take (batch, tokens, features) inputs; wanda cannot score it"
            )
        xs = x.reshape(-1, x.shape[-1])[pos.reshape(-1)]  # OPT flattens tokens before its MLP
        s = xs.float().square().sum(0)
        if name in sq:
            sq[name] += s
        else:
            sq[name] = s

    dev = input_device(model)
    extra: dict[str, Any] = {"use_cache": False}
    if accepts_logits_to_keep(model):
        extra["logits_to_keep"] = 1  # the head's output is not needed
    with eval_mode(model), torch.no_grad(), hooks(modules, forward_pre=pre):
        for batch in progress(batches, desc="wanda", total=len(batches)):
            pos = scored_positions(batch, positions)
            if not bool(pos.any()):
                continue
            current["pos"] = pos.to(dev)
            model(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev), **extra)
    return sq


def wanda_scores(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch], positions: str = "response"
) -> dict[str, torch.Tensor]:
    """S_ij = |W_ij| * sqrt(sum over scored tokens of x_j^2), float32 on CPU, weight's own shape."""
    sq = input_sq_norms(model, modules, batches, positions)
    out: dict[str, torch.Tensor] = {}
    for name, mod in modules.items():
        w = weight_of(mod).detach()
        norm = sq[name].sqrt() if name in sq else torch.zeros(w.shape[weight_in_axis(mod)], device=w.device)
        norm = norm.to(w.device)
        shape = (1, -1) if weight_in_axis(mod) == 1 else (-1, 1)
        out[weight_key(name)] = (w.float().abs() * norm.view(shape)).cpu()
    return out
