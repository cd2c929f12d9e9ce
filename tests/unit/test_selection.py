"""Selection rules against brute force: numpy stable sorts and Python sets."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from excise.core import Scores, Selection
from excise.errors import ExciseError
from excise.selection import (
    intersection,
    jaccard,
    per_layer_counts,
    random_selection,
    set_difference,
    top,
    union,
)

SHAPES = {
    "model.layers.0.self_attn.q_proj.weight": (6, 8),
    "model.layers.0.mlp.down_proj.weight": (8, 12),
    "model.layers.1.self_attn.q_proj.weight": (6, 8),
    "model.layers.1.mlp.c_fc.weight": (8, 10),  # stored (in, out) like GPT-2's Conv1D
    "lm_head.weight": (5, 8),
}
IN_AXIS = {k: (0 if k.endswith("c_fc.weight") else 1) for k in SHAPES}


def make_scores(seed: int, ties: bool = False) -> Scores:
    rng = np.random.default_rng(seed)
    tensors = {}
    for k, shape in SHAPES.items():
        vals = rng.integers(0, 4, size=shape) if ties else rng.random(shape)
        tensors[k] = torch.tensor(vals, dtype=torch.float32)
    return Scores(tensors, unit="weight", meta={"in_axis": IN_AXIS, "method": "test"})


def k_of(fraction: float, n: int) -> int:
    return min(n, math.floor(round(fraction * n, 6)))


def brute_top(values: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Indices of the k first entries of a stable sort by (score, index)."""
    idx = np.arange(values.size)
    order = np.lexsort((idx, -values if largest else values))
    return order[:k]


def brute(
    scores: Scores, fraction: float | None, count: int | None, scope: str, largest: bool
) -> dict[str, np.ndarray]:
    arrs = {k: t.numpy().astype(np.float64) for k, t in scores.items()}
    out = {k: np.zeros(a.shape, dtype=bool) for k, a in arrs.items()}

    def k_for(n: int) -> int:
        return k_of(fraction, n) if fraction is not None else min(n, count or 0)

    if scope == "row":
        for key, a in arrs.items():
            rows = a.T if IN_AXIS[key] == 0 else a
            m = np.zeros(rows.shape, dtype=bool)
            for r in range(rows.shape[0]):
                m[r, brute_top(rows[r], k_for(rows.shape[1]), largest)] = True
            out[key] = m.T if IN_AXIS[key] == 0 else m
        return out
    groups: dict[str, list[str]] = {}
    for key in arrs:
        if scope == "matrix":
            g = key
        elif scope == "global":
            g = "all"
        else:
            found = re.search(r"\.(\d+)\.", key)
            g = found.group(1) if found else "other"
        groups.setdefault(g, []).append(key)
    for keys in groups.values():
        flat = np.concatenate([arrs[k].ravel() for k in keys])
        chosen = np.zeros(flat.size, dtype=bool)
        chosen[brute_top(flat, k_for(flat.size), largest)] = True
        start = 0
        for k in keys:
            n = arrs[k].size
            out[k] = chosen[start : start + n].reshape(arrs[k].shape)
            start += n
    return out


@pytest.mark.parametrize("scope", ["row", "matrix", "layer", "global"])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(
    ("fraction", "count"), [(0.3, None), (0.29, None), (1.0, None), (None, 3), (None, 1000)]
)
def test_top_matches_brute_force(
    scope: str, largest: bool, ties: bool, fraction: float | None, count: int | None
) -> None:
    s = make_scores(7, ties=ties)
    sel = top(s, fraction=fraction, count=count, scope=scope, largest=largest)
    ref = brute(s, fraction, count, scope, largest)
    assert set(sel) == set(ref)
    for k in ref:
        assert np.array_equal(sel[k].numpy(), ref[k]), k
    assert sel.meta["scope"] == scope and sel.meta["scores"]["method"] == "test"


def test_row_scope_is_per_output_row() -> None:
    s = make_scores(1)
    sel = top(s, fraction=0.5, scope="row")
    assert (sel["model.layers.0.self_attn.q_proj.weight"].sum(1) == 4).all()  # Linear: rows of (out, in)
    assert (sel["model.layers.1.mlp.c_fc.weight"].sum(0) == 4).all()  # Conv1D: columns of (in, out)


def index_set(mask: torch.Tensor, key: str) -> set[tuple[str, int]]:
    return {(key, int(i)) for i in torch.nonzero(mask.flatten()).flatten()}


def all_sets(sel: Selection) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for k, m in sel.items():
        out |= index_set(m, k)
    return out


@pytest.mark.parametrize(("p", "q"), [(0.1, 0.1), (0.05, 0.3), (0.5, 0.2), (1.0, 1.0)])
def test_set_difference_matches_python_sets(p: float, q: float) -> None:
    safety, utility = make_scores(2), make_scores(3, ties=True)
    sel = set_difference(safety, utility, p=p, q=q)
    expected: set[tuple[str, int]] = set()
    for k in SHAPES:
        s_vals = safety[k].numpy().ravel().astype(np.float64)
        u_vals = utility[k].numpy().ravel().astype(np.float64)
        top_q = {(k, int(i)) for i in brute_top(s_vals, k_of(q, s_vals.size), True)}
        top_p = {(k, int(i)) for i in brute_top(u_vals, k_of(p, u_vals.size), True)}
        expected |= top_q - top_p
    assert all_sets(sel) == expected
    assert sel.meta["p"] == p and sel.meta["q"] == q


def test_overlaps_match_python_sets() -> None:
    a = top(make_scores(4), fraction=0.3, scope="global")
    b = top(make_scores(5), fraction=0.2, scope="matrix")
    sa, sb = all_sets(a), all_sets(b)
    assert all_sets(intersection(a, b)) == sa & sb
    assert all_sets(union(a, b)) == sa | sb
    assert jaccard(a, b) == pytest.approx(len(sa & sb) / len(sa | sb))
    assert jaccard(a, a) == 1.0
    counts: dict[str, int] = {}
    for key, _ in sa:
        found = re.search(r"\.(\d+)\.", key)
        lay = found.group(1) if found else "other"
        counts[lay] = counts.get(lay, 0) + 1
    assert per_layer_counts(a) == counts
    assert list(per_layer_counts(a)) == ["0", "1", "other"]


def test_random_selection_same_counts_and_uniform() -> None:
    like = top(make_scores(6), fraction=0.25, scope="global")
    r = random_selection(like, seed=1)
    assert {k: int(t.sum()) for k, t in r.items()} == {k: int(t.sum()) for k, t in like.items()}
    assert all(torch.equal(r[k], random_selection(like, seed=1)[k]) for k in r)
    assert any(not torch.equal(r[k], random_selection(like, seed=2)[k]) for k in r)
    small = Selection({"w": torch.tensor([True, True, True] + [False] * 7)})
    freq = sum(random_selection(small, seed=s)["w"].long() for s in range(2000))
    assert int(freq.sum()) == 6000
    assert ((freq > 500) & (freq < 700)).all()  # each of 10 positions about 600 times


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.1, float("nan")])
def test_bad_fractions_are_errors(bad: float) -> None:
    s = make_scores(0)
    with pytest.raises(ExciseError, match="fraction in \\(0, 1\\]"):
        top(s, fraction=bad)
    # checked before any work, even when the scores would not match
    other = Scores({"x": torch.ones(2)})
    with pytest.raises(ExciseError, match="p must be a fraction"):
        set_difference(s, other, p=bad, q=0.1)
    with pytest.raises(ExciseError, match="q must be a fraction"):
        set_difference(s, other, p=0.1, q=bad)


def test_other_errors() -> None:
    s = make_scores(0)
    with pytest.raises(ExciseError, match="exactly one"):
        top(s)
    with pytest.raises(ExciseError, match="exactly one"):
        top(s, fraction=0.1, count=3)
    with pytest.raises(ExciseError, match="unknown scope"):
        top(s, fraction=0.1, scope="column")
    with pytest.raises(ExciseError, match="count must be"):
        top(s, count=-1)
    with pytest.raises(ExciseError, match="different tensors"):
        set_difference(s, Scores({"x": torch.ones(2)}), p=0.1, q=0.1)
    nan = Scores({"x": torch.tensor([1.0, float("nan")])})
    with pytest.raises(ExciseError, match="NaN"):
        top(nan, fraction=0.5)


def test_masks_round_trip(tmp_path: Path) -> None:
    sel = set_difference(make_scores(1), make_scores(2), p=0.2, q=0.4)
    path = sel.save(tmp_path / "mask")
    back = Selection.load(path)
    assert back.meta == sel.meta
    assert all(torch.equal(back[k], sel[k]) and back[k].dtype == torch.bool for k in sel)
