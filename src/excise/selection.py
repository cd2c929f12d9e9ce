"""Scores -> Selection: top / bottom fraction or count per row, matrix, layer or globally; set
difference (Wei et al. 2024); intersection, union, Jaccard overlap; per-layer counts; random baseline.

Ties are broken deterministically: among equal scores the unit with the lower flat index (in key
order for groups spanning several tensors) is taken first, as a stable sort by score then index.
Counts from fractions are floor(fraction * group size), as in the Wanda and Wei et al. code.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from excise.core import Scores, Selection, require_unit
from excise.errors import ExciseError

SCOPES = ("row", "matrix", "layer", "global")
_LAYER_RE = re.compile(r"\.(\d+)\.")


def check_fraction(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not (0.0 < float(value) <= 1.0):
        raise ExciseError(f"{name} must be a fraction in (0, 1], got {value!r} (e.g. 0.01 for 1%)")
    return float(value)


def count_for(fraction: float, n: int) -> int:
    """Number of units a fraction of ``n`` keeps: floor(fraction * n).

    A product within float rounding (1e-9 relative) of an integer counts as that integer, so
    0.29 * 100 is 29 and (1/3) * 9 is 3; anything farther is floored: 0.99999999 * 10 is 9.
    """
    x = float(fraction) * n
    nearest = round(x)
    if abs(x - nearest) <= 1e-9 * max(1.0, abs(x)):
        return min(n, nearest)
    return min(n, math.floor(x))


def layer_of(name: str) -> str:
    """Decoder layer index parsed from a parameter name (first ``.N.`` component), or ``"other"``."""
    m = _LAYER_RE.search(f".{name}.")
    return m.group(1) if m else "other"


def _top_mask_1d(key: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k largest entries of a 1-D tensor; ties go to the lower index."""
    n = key.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool)
    if k >= n:
        return torch.ones(n, dtype=torch.bool)
    v = torch.kthvalue(key, n - k + 1).values  # the k-th largest value
    mask = key > v
    need = k - int(mask.sum())
    eq = key == v
    mask |= eq & (torch.cumsum(eq, 0) <= need)
    return mask


def _top_mask_rows(key: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise version of ``_top_mask_1d`` for a 2-D tensor (k per row)."""
    rows, n = key.shape
    if k <= 0:
        return torch.zeros(rows, n, dtype=torch.bool)
    if k >= n:
        return torch.ones(rows, n, dtype=torch.bool)
    v = torch.kthvalue(key, n - k + 1, dim=1, keepdim=True).values
    mask = key > v
    need = k - mask.sum(1, keepdim=True)
    eq = key == v
    return mask | (eq & (torch.cumsum(eq, 1) <= need))


def _key(t: torch.Tensor, largest: bool) -> torch.Tensor:
    t = t.detach().to("cpu", torch.float32)
    if torch.isnan(t).any():
        raise ExciseError("scores contain NaN; recompute them (the model or data produced invalid values)")
    return t if largest else -t


def _rows_view(t: torch.Tensor, in_axis: int) -> torch.Tensor:
    """(output rows, inputs) view: Linear weights are (out, in), GPT-2 Conv1D weights (in, out)."""
    if t.dim() < 2:
        return t.reshape(1, -1)
    if t.dim() == 2 and in_axis == 0:
        return t.t()
    return t.reshape(t.shape[0], -1)


def _select_groups(
    tensors: dict[str, torch.Tensor], groups: dict[str, list[str]], fraction: float | None, count: int | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for keys in groups.values():
        flat = torch.cat([tensors[k].reshape(-1) for k in keys])
        k = count_for(fraction, flat.numel()) if fraction is not None else int(count or 0)
        mask = _top_mask_1d(flat, k)
        start = 0
        for key in keys:
            n = tensors[key].numel()
            out[key] = mask[start : start + n].view(tensors[key].shape)
            start += n
    return out


def top(
    scores: Scores,
    fraction: float | None = None,
    count: int | None = None,
    scope: str = "matrix",
    largest: bool = True,
) -> Selection:
    """The top (``largest``) or bottom fraction / count of units, compared per ``scope``.

    ``row``: per output row of each weight (Wanda's comparison group); ``matrix``: per tensor;
    ``layer``: per decoder layer (index parsed from the names); ``global``: all units together.
    A count larger than a group selects the whole group.
    """
    if (fraction is None) == (count is None):
        raise ExciseError("give exactly one of fraction (e.g. 0.01) or count (e.g. 1000)")
    if fraction is not None:
        fraction = check_fraction("fraction", fraction)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ExciseError(f"count must be a non-negative integer, got {count!r}")
    if scope not in SCOPES:
        raise ExciseError(f"unknown scope '{scope}'; choose one of {', '.join(SCOPES)}")
    if len(scores) == 0:
        raise ExciseError("the scores are empty; there is nothing to select from")
    if scope == "row":
        require_unit(scores, "weight", "top(scope='row') (rows of a weight matrix)")
    keys = {k: _key(t, largest) for k, t in scores.items()}
    axes: dict[str, int] = dict(scores.meta.get("in_axis", {}))
    if scope == "row":
        masks: dict[str, torch.Tensor] = {}
        for name, t in keys.items():
            axis = int(axes.get(name, 1))
            rows = _rows_view(t, axis)
            k = count_for(fraction, rows.shape[1]) if fraction is not None else int(count or 0)
            m = _top_mask_rows(rows.contiguous(), k)
            masks[name] = (m.t() if t.dim() == 2 and axis == 0 else m).reshape(t.shape)
    else:
        if scope == "matrix":
            groups = {k: [k] for k in keys}
        elif scope == "global":
            groups = {"all": list(keys)}
        else:
            groups = {}
            for name in keys:
                groups.setdefault(layer_of(name), []).append(name)
        masks = _select_groups(keys, groups, fraction, count)
    meta: dict[str, Any] = {
        "rule": "top" if largest else "bottom",
        "fraction": fraction,
        "count": count,
        "scope": scope,
        "scores": _source(scores),
    }
    return Selection(masks, unit=scores.unit, meta=meta)


def _source(scores: Scores) -> dict[str, Any]:
    return {
        k: scores.meta[k]
        for k in ("method", "cache_key", "model_fingerprint", "data_fingerprint")
        if k in scores.meta
    }


def _check_same(a: Any, b: Any, what: str) -> None:
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
        raise ExciseError(
            f"{what} cover different tensors (only in the first: {only_a}, only in the second: {only_b})"
        )
    for k in a:
        if tuple(a[k].shape) != tuple(b[k].shape):
            raise ExciseError(
                f"{what} disagree on the shape of '{k}': {tuple(a[k].shape)} vs {tuple(b[k].shape)}"
            )
    if a.unit != b.unit:
        raise ExciseError(f"{what} have different unit kinds: {a.unit} vs {b.unit}")


def set_difference(safety: Scores, utility: Scores, p: float, q: float, scope: str = "matrix") -> Selection:
    """Units in the top q of the safety scores and not in the top p of the utility scores (Wei et al. 2024).

    p and q are fractions per matrix by default (``scope`` as in ``top``).
    """
    p = check_fraction("p", p)
    q = check_fraction("q", q)
    _check_same(safety, utility, "safety and utility scores")
    s = top(safety, fraction=q, scope=scope)
    u = top(utility, fraction=p, scope=scope)
    masks = {k: s[k] & ~u[k] for k in s}
    meta = {
        "rule": "set_difference",
        "p": p,
        "q": q,
        "scope": scope,
        "safety": _source(safety),
        "utility": _source(utility),
    }
    return Selection(masks, unit=safety.unit, meta=meta)


def intersection(a: Selection, b: Selection) -> Selection:
    """Units selected in both a and b."""
    _check_same(a, b, "selections")
    return Selection({k: a[k] & b[k] for k in a}, unit=a.unit, meta={"rule": "intersection"})


def union(a: Selection, b: Selection) -> Selection:
    """Units selected in a or b."""
    _check_same(a, b, "selections")
    return Selection({k: a[k] | b[k] for k in a}, unit=a.unit, meta={"rule": "union"})


def jaccard(a: Selection, b: Selection) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 when both are empty)."""
    _check_same(a, b, "selections")
    inter = sum(int((a[k] & b[k]).sum()) for k in a)
    uni = sum(int((a[k] | b[k]).sum()) for k in a)
    return inter / uni if uni else 1.0


def per_layer_counts(sel: Selection) -> dict[str, int]:
    """Number of selected units per decoder layer index (``"other"`` for names without one)."""
    out: dict[str, int] = {}
    for k, t in sel.items():
        lay = layer_of(k)
        out[lay] = out.get(lay, 0) + int(t.sum())
    return dict(
        sorted(out.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0))
    )


def random_selection(like: Selection, seed: int = 0) -> Selection:
    """The same number of units per tensor as ``like``, chosen uniformly at random (a baseline)."""
    gen = torch.Generator().manual_seed(int(seed))
    masks: dict[str, torch.Tensor] = {}
    for k in sorted(like):
        t = like[k]
        n, c = t.numel(), int(t.sum())
        m = torch.zeros(n, dtype=torch.bool)
        m[torch.randperm(n, generator=gen)[:c]] = True
        masks[k] = m.view(t.shape)
    return Selection(
        {k: masks[k] for k in like}, unit=like.unit, meta={"rule": "random", "seed": seed, "like": like.meta}
    )


def counts(sel: Selection) -> dict[str, int]:
    """Number of selected units per tensor."""
    return {k: int(t.sum()) for k, t in sel.items()}


__all__ = [
    "SCOPES",
    "check_fraction",
    "count_for",
    "counts",
    "intersection",
    "jaccard",
    "layer_of",
    "per_layer_counts",
    "random_selection",
    "set_difference",
    "top",
    "union",
]
