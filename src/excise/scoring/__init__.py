"""Scoring: give every unit of a model (weight, neuron, subcomponent, ...) an importance for a behaviour.

``score(model, tokenizer, data, method, **settings)`` looks the method up in the registry
(``excise.scoring.registry.METHODS``), validates its settings against the method's frozen config,
and caches the result by content (method config, model fingerprint, data fingerprint), so a
second identical request computes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from excise.cache import cached_scores, model_fingerprint
from excise.core import Scores
from excise.errors import ExciseError
from excise.scoring.base import DataLike, in_axes, load_calibration, scored_positions, target_modules
from excise.scoring.magnitude import magnitude_scores
from excise.scoring.registry import ALIASES, METHODS, Method, MethodConfig, get_method, method_config
from excise.scoring.snip import sample_losses, snip_scores
from excise.scoring.wanda import wanda_scores


def _inputs(data: Any) -> tuple[list[torch.Tensor], str]:
    """Raw model inputs (one tensor or a list of tensors) and their fingerprint."""
    items = [data] if isinstance(data, torch.Tensor) else list(data) if data is not None else []
    if not items or not all(isinstance(x, torch.Tensor) for x in items):
        raise ExciseError("this method needs its inputs as a tensor or a list of tensors (e.g. a batch of x)")
    h = hashlib.sha256()
    for x in items:
        h.update(f"{x.dtype}{tuple(x.shape)}".encode())
        h.update(x.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return items, h.hexdigest()[:24]


def score(
    model: nn.Module,
    tokenizer: Any,
    data: DataLike | torch.Tensor,
    method: str = "snip",
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    use_cache: bool = True,
    **settings: Any,
) -> Scores:
    """Importance of every unit the method scores, as float32 CPU ``Scores`` of the method's unit.

    ``data``: a built-in set name, a data file, a list of ``Example`` or of ``Batch`` (token methods;
    ignored by ``magnitude``), or a tensor of inputs (``spd``). ``settings`` are the method's config
    fields (e.g. ``targets=["*.mlp.*"]`` or ``positions="next"`` for wanda); an unknown one is an
    ExciseError. Weight scores keep each parameter's shape and ``meta["in_axis"]`` gives the
    input-feature axis of each weight.
    """
    m = get_method(method)
    cfg = method_config(m.name, **settings)
    if batch_size < 1:
        raise ExciseError(f"batch size must be at least 1, got {batch_size}")
    batches: Sequence[Any]
    if m.data == "tokens":
        batches, data_fp = load_calibration(data, tokenizer, model, batch_size, max_length)  # type: ignore[arg-type]
    elif m.data == "inputs":
        batches, data_fp = _inputs(data)
    else:
        batches, data_fp = [], "none"

    def compute() -> Scores:
        out = m.fn(model, tokenizer, batches, cfg)
        if out.unit != m.unit:
            raise ExciseError(f"method '{m.name}' returned unit '{out.unit}', registered as '{m.unit}'")
        return out

    model_fp = model_fingerprint(model) if use_cache else "not computed (use_cache=False)"
    return cached_scores(m.name, cfg.to_dict(), model_fp, data_fp, compute, use_cache=use_cache)


__all__ = [
    "ALIASES",
    "METHODS",
    "Method",
    "MethodConfig",
    "get_method",
    "in_axes",
    "load_calibration",
    "magnitude_scores",
    "method_config",
    "sample_losses",
    "score",
    "scored_positions",
    "snip_scores",
    "target_modules",
    "wanda_scores",
]
