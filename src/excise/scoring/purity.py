"""Feature purity of CLIP-style projections (unit: ``feature``, one dimension of the joint embedding).

For each projection V (rows = output features, normalised to unit length), G = V V^T with the
diagonal removed; the research code's score of feature j is ``sum_i |G_ji|`` summed over the given
projections (image and text). Low score = high purity: the feature's direction overlaps little with
the others. Variants: ``l2`` (sqrt of sum of squares) and ``linf`` (max over i), each summed over the
projections, and ``purity = 1 / mean_i |cos|`` (the mean over all off-diagonal entries of row j of
every projection).

Orientation: HF ``nn.Linear`` stores (out, in) = (features, inputs); open_clip stores its projection
parameters (in, out). ``orientation="in_out"`` transposes before anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from excise.core import Scores
from excise.errors import ExciseError

#: The single site name of feature scores: the joint embedding space the projections write into.
FEATURE_KEY = "embedding"
MEASURES = ("l1", "l2", "linf")
ORIENTATIONS = ("out_in", "in_out")


def feature_rows(weight: torch.Tensor, orientation: str) -> torch.Tensor:
    """The projection as (features, inputs) float32: ``weight`` itself for out_in, its transpose for in_out."""
    if orientation not in ORIENTATIONS:
        raise ExciseError(f"unknown orientation '{orientation}'; choose one of {', '.join(ORIENTATIONS)}")
    if weight.dim() != 2:
        raise ExciseError(f"a projection must be a 2-D matrix, got shape {tuple(weight.shape)}")
    w = weight.detach().to("cpu", torch.float32)
    return w if orientation == "out_in" else w.t()


def abs_cosines(rows: torch.Tensor) -> torch.Tensor:
    """|cos| between every pair of rows, diagonal set to 0 (rows of zero length count as 0)."""
    v = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    g = (v @ v.t()).abs()
    g.fill_diagonal_(0.0)
    return g


def purity_measures(projections: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-feature measures from (features, inputs) projections with equal feature counts.

    ``l1`` (the research score), ``l2``, ``linf``: summed over the projections; ``purity``: 1 / mean |cos|.
    """
    if not projections:
        raise ExciseError("purity needs at least one projection matrix")
    sizes = {p.shape[0] for p in projections}
    if len(sizes) != 1:
        raise ExciseError(
            f"the projections have different feature counts {sorted(sizes)}; the purity of a pair needs "
            "projections into the same embedding space"
        )
    n = projections[0].shape[0]
    if n < 2:
        raise ExciseError(f"purity needs at least 2 features, the projection has {n}")
    gs = [abs_cosines(p) for p in projections]
    l1 = sum(g.sum(1) for g in gs)
    l2 = sum(g.pow(2).sum(1).sqrt() for g in gs)
    linf = sum(g.max(1).values for g in gs)
    mean = l1 / ((n - 1) * len(gs))
    return {"l1": l1, "l2": l2, "linf": linf, "purity": 1.0 / mean.clamp_min(1e-12)}  # type: ignore[dict-item]


def cosine_summary(projections: Sequence[torch.Tensor]) -> dict[str, float]:
    """Mean / max / median |cos| over the off-diagonal entries of each projection (keys per index)."""
    out: dict[str, float] = {}
    for i, p in enumerate(projections):
        g = abs_cosines(p)
        n = g.shape[0]
        off = g[~torch.eye(n, dtype=torch.bool)]
        prefix = f"p{i}." if len(projections) > 1 else ""
        out[f"{prefix}mean_abs_cos"] = float(off.mean())
        out[f"{prefix}max_abs_cos"] = float(off.max())
        out[f"{prefix}median_abs_cos"] = float(off.median())
    return out


def purity_scores(
    weights: Mapping[str, torch.Tensor], orientation: str = "out_in", measure: str = "l1"
) -> Scores:
    """Feature ``Scores`` of the named projection weights (as stored, in ``orientation``).

    The main tensor (key :data:`FEATURE_KEY`) is ``measure`` (``l1`` = the research score); every
    measure is also a companion, as is each projection's own ``l1``. Lower = purer: the ``min``
    strategy keeps the lowest scores (``top(..., largest=False)``).
    """
    if measure not in MEASURES:
        raise ExciseError(f"unknown purity measure '{measure}'; choose one of {', '.join(MEASURES)}")
    names = list(weights)
    rows = [feature_rows(weights[k], orientation) for k in names]
    measures = purity_measures(rows)
    summary = {
        (k.replace("p0.", f"{names[0]}.").replace("p1.", f"{names[-1]}.") if len(names) > 1 else k): v
        for k, v in cosine_summary(rows).items()
    }
    per_proj = {name: abs_cosines(r).sum(1) for name, r in zip(names, rows, strict=True)}
    docs = {
        "l1": "sum_i |cos(v_j, v_i)| summed over the projections (the research score; lower = purer)",
        "l2": "sqrt(sum_i cos^2) summed over the projections",
        "linf": "max_i |cos(v_j, v_i)| summed over the projections",
        "purity": "1 / mean_i |cos(v_j, v_i)| over all projections (higher = purer)",
        "by_projection": "each projection's own l1 score, keyed by its parameter name",
    }
    companions = {m: {FEATURE_KEY: measures[m].clone()} for m in ("l1", "l2", "linf", "purity")}
    companions["by_projection"] = per_proj
    meta: dict[str, Any] = {
        "measure": measure,
        "lower_is_purer": True,
        "projections": names,
        "orientation": orientation,
        "features": int(rows[0].shape[0]),
        "summary": summary,
    }
    return Scores(
        {FEATURE_KEY: measures[measure]}, unit="feature", meta=meta, companions=companions, companion_doc=docs
    )


def purity(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    """Registry entry: purity of the projections ``cfg.projections`` of a CLIP-style model."""
    from excise.models.clip import projection_weights

    weights, orientation = projection_weights(model, cfg.projections, cfg.orientation)
    return purity_scores(weights, orientation, cfg.measure)
