"""Scoring: give every weight of the chosen Linear layers an importance for a behaviour.

``score(model, tokenizer, data, method)`` dispatches to one method per file (``magnitude``,
``wanda``, ``snip`` a.k.a. ``wandg``) and caches the result by content (method, parameters,
model fingerprint, data fingerprint), so a second identical request computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from excise.cache import cached_scores, model_fingerprint
from excise.core import Scores
from excise.data import Batch
from excise.errors import ExciseError
from excise.scoring.base import DataLike, in_axes, load_calibration, scored_positions, target_modules
from excise.scoring.magnitude import magnitude_scores
from excise.scoring.snip import sample_losses, snip_scores
from excise.scoring.wanda import wanda_scores

ScoreFn = Callable[[nn.Module, dict[str, nn.Module], Sequence[Batch]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Method:
    """A weight-level scoring method: its function and whether it needs calibration data."""

    name: str
    fn: ScoreFn
    needs_data: bool
    summary: str


METHODS: dict[str, Method] = {
    "magnitude": Method("magnitude", magnitude_scores, False, "|W|"),
    "wanda": Method("wanda", wanda_scores, True, "|W_ij| * ||X_j||_2 on the scored tokens"),
    "snip": Method("snip", snip_scores, True, "sum over samples of |W * grad L(x)| (per-sample)"),
}
ALIASES = {"wandg": "snip"}


def get_method(name: str) -> Method:
    """The method called ``name`` (or an alias), or an ExciseError listing the methods."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        names = ", ".join(list(METHODS) + [f"{a} (= {t})" for a, t in ALIASES.items()])
        raise ExciseError(f"unknown scoring method '{name}'; choose one of: {names}")
    return METHODS[key]


def score(
    model: nn.Module,
    tokenizer: Any,
    data: DataLike,
    method: str,
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    use_cache: bool = True,
    targets: Sequence[str] | None = None,
) -> Scores:
    """Importance of every weight of the target layers (default: every Linear but the output head).

    ``data``: a built-in set name, a data file, a list of ``Example`` or a list of ``Batch``
    (ignored by ``magnitude``). Returns float32 CPU ``Scores`` keyed by parameter name, each in the
    parameter's own shape; ``meta["in_axis"]`` gives the input-feature axis of each weight.
    """
    m = get_method(method)
    if batch_size < 1:
        raise ExciseError(f"batch size must be at least 1, got {batch_size}")
    if m.needs_data:
        batches, data_fp = load_calibration(data, tokenizer, model, batch_size, max_length)
    else:
        batches, data_fp = [], "none"
    modules = target_modules(model, targets)
    params: dict[str, Any] = {"targets": list(targets) if targets else None}

    def compute() -> Scores:
        tensors = m.fn(model, modules, batches)
        return Scores(tensors, unit="weight", meta={"in_axis": in_axes(modules), "n_batches": len(batches)})

    model_fp = model_fingerprint(model) if use_cache else "not computed (use_cache=False)"
    return cached_scores(m.name, params, model_fp, data_fp, compute, use_cache=use_cache)


__all__ = [
    "ALIASES",
    "METHODS",
    "Method",
    "get_method",
    "in_axes",
    "load_calibration",
    "magnitude_scores",
    "sample_losses",
    "score",
    "scored_positions",
    "snip_scores",
    "target_modules",
    "wanda_scores",
]
