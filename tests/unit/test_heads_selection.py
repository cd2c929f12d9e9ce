"""Head clustering, medoids, budgets and the pruning log, against scipy run directly and naive loops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from excise.core import Scores
from excise.errors import ExciseError
from excise.selection_heads import (
    cluster_heads,
    linkage_for,
    medoid,
    pruning_log_text,
    select_heads,
    write_pruning_log,
)


def partition(labels):
    groups: dict[int, set[int]] = {}
    for i, c in enumerate(labels):
        groups.setdefault(int(c), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def naive_medoid(d, members):
    best, best_sum = None, None
    for m in members:
        s = sum(d[m][o] for o in members)
        if best_sum is None or s < best_sum - 1e-12:
            best, best_sum = m, s
    return best


def fake_scores(points_per_layer, metric="euclidean"):
    """Head-distance Scores from explicit head vectors (one (heads, dim) array per layer)."""
    keys = [f"model.layers.{i}.self_attn.o_proj" for i in range(len(points_per_layer))]
    dist = {}
    for k, p in zip(keys, points_per_layer, strict=True):
        m = "euclidean" if metric == "euclidean" else "cosine"
        dist[k] = torch.tensor(squareform(pdist(p, metric=m)))
    tensors = {k: torch.zeros(d.shape[0]) for k, d in dist.items()}
    n = sum(d.shape[0] for d in dist.values())
    return Scores(
        tensors,
        unit="head",
        meta={"metric": metric, "n_kv_heads": 8},
        companions={"distance": dist, "distance_all": {"heads": torch.zeros(n, n)}},
        companion_doc={"distance": "d", "distance_all": "d"},
    )


@pytest.mark.parametrize("method", ["ward", "average"])
@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_clusters_equal_scipy_fcluster(method, k):
    rng = np.random.default_rng(k)
    pts = rng.normal(size=(9, 4))
    d = squareform(pdist(pts))
    got = cluster_heads(torch.tensor(d), k, method)
    want = fcluster(linkage(pdist(pts), method=method), t=k, criterion="maxclust")
    assert partition(got) == partition(want)
    assert len(set(got.tolist())) == k


def test_linkage_is_ward_only_for_euclidean():
    assert linkage_for("euclidean") == "ward"
    assert linkage_for("cosine") == "average"
    assert linkage_for("random") == "average"


def test_medoid_equals_naive_loop():
    rng = np.random.default_rng(0)
    d = squareform(pdist(rng.normal(size=(7, 3))))
    for members in ([0, 1, 2], [3, 6], [0, 2, 4, 5, 6], [5]):
        assert medoid(d, members) == naive_medoid(d, members)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_balanced_selection_keeps_scipy_cluster_medoids(metric):
    rng = np.random.default_rng(1)
    layers = [rng.normal(size=(8, 5)) for _ in range(3)]
    s = fake_scores(layers, metric)
    sel = select_heads(s, 0.25, budget="balanced")
    assert sel.unit == "head" and sel.meta["linkage"] == linkage_for(metric)
    for key, pts in zip(s, layers, strict=True):
        assert int(sel[key].sum()) == 2  # floor(0.25 * 8)
        d = squareform(pdist(pts, metric=metric))
        want = fcluster(linkage(pdist(pts, metric=metric), method=linkage_for(metric)), 6, "maxclust")
        kept_for = sel.meta["kept_for"][key]
        for members in partition(want):
            m = naive_medoid(d, sorted(members))
            for h in members:
                assert kept_for[h] == m
                assert bool(sel[key][h]) == (h != m)
    rec = sel.meta["log"][0]
    assert set(rec) >= {"layer", "head", "cluster", "kept", "distance", "reason"}
    d0 = s.companions["distance"][rec["key"]]
    assert rec["distance"] == pytest.approx(float(d0[rec["head"], rec["kept"]]))


def test_imbalanced_budget_counts_from_closest_pairs():
    rng = np.random.default_rng(2)
    layers = [rng.normal(size=(6, 3)) * (1 + li) for li in range(3)]  # layer 0 heads are closest
    s = fake_scores(layers)
    sel = select_heads(s, 0.3, budget="imbalanced")
    total = int(0.3 * 18)
    pairs = sorted(
        (squareform(pdist(p))[i, j], li)
        for li, p in enumerate(layers)
        for i in range(6)
        for j in range(i + 1, 6)
    )
    counts = [0, 0, 0]
    for _, li in pairs:
        if sum(counts) == total:
            break
        if counts[li] < 5:
            counts[li] += 1
    assert sel.meta["per_layer"] == counts
    assert [int(m.sum()) for m in sel.values()] == counts
    assert sel.count() == total


def test_importance_and_random_budgets():
    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(4, 3)) for _ in range(3)]
    s = fake_scores(layers)
    imp_vals = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.95, 0.99], [0.15, 0.5, 0.6, 0.7]])
    imp = Scores({k: imp_vals[i] for i, k in enumerate(s)}, unit="head")
    sel = select_heads(s, 0.25, budget="importance", importance=imp)
    # the 3 lowest: 0.1, 0.15, 0.2 -> layer 1 twice, layer 2 once
    assert sel.meta["per_layer"] == [0, 2, 1]
    r1 = select_heads(s, 0.5, budget="random", seed=4)
    r2 = select_heads(s, 0.5, budget="random", seed=4)
    r3 = select_heads(s, 0.5, budget="random", seed=5)
    assert r1.count() == 6 and all(int(m.sum()) <= 3 for m in r1.values())
    assert all(torch.equal(r1[k], r2[k]) for k in r1)
    assert any(not torch.equal(r1[k], r3[k]) for k in r1)
    for key, mask in r1.items():
        for h in torch.nonzero(mask).flatten().tolist():
            assert not bool(mask[r1.meta["kept_for"][key][h]])


def test_group_metric_chooses_the_kept_head():
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [5.0, 5.0]])
    s = fake_scores([pts])
    base = select_heads(s, 0.5, budget="balanced")
    assert base.meta["kept_for"]["model.layers.0.self_attn.o_proj"][:3] == [1, 1, 1]  # the middle one
    # second metric: head 0 is the medoid of the cluster {0, 1, 2}
    g = np.array([[0, 0.1, 0.1, 9], [0.1, 0, 5, 9], [0.1, 5, 0, 9], [9, 9, 9, 0]], dtype=float)
    gs = Scores(
        {"model.layers.0.self_attn.o_proj": torch.zeros(4)},
        unit="head",
        meta={"metric": "cosine"},
        companions={"distance": {"model.layers.0.self_attn.o_proj": torch.tensor(g)}},
        companion_doc={"distance": "d"},
    )
    sel = select_heads(s, 0.5, budget="balanced", group_scores=gs)
    kept = sel.meta["kept_for"]["model.layers.0.self_attn.o_proj"]
    assert kept == [0, 0, 0, 3]


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, True])
def test_fraction_outside_range_is_refused(bad):
    s = fake_scores([np.eye(4)])
    with pytest.raises(ExciseError, match=r"fraction of heads to prune must be in \[0, 1\)"):
        select_heads(s, bad)


def test_wrong_unit_and_budget_are_refused():
    s = fake_scores([np.eye(4)])
    with pytest.raises(ExciseError, match="unknown head budget"):
        select_heads(s, 0.25, budget="greedy")
    w = Scores({"a.weight": torch.ones(2, 2)}, unit="weight")
    with pytest.raises(ExciseError, match="unit 'head'.*got unit 'weight'"):
        select_heads(w, 0.25)


def test_pruning_log_json_and_text(tmp_path):
    rng = np.random.default_rng(5)
    s = fake_scores([rng.normal(size=(4, 3)) for _ in range(2)])
    sel = select_heads(s, 0.5)
    jpath, tpath = write_pruning_log(sel, tmp_path)
    body = json.loads(jpath.read_text())
    assert len(body["pruned"]) == sel.count() == 4
    assert body["settings"]["budget"] == "balanced"
    for rec in body["pruned"]:
        assert bool(sel[rec["key"]][rec["head"]]) and not bool(sel[rec["key"]][rec["kept"]])
    text = tpath.read_text()
    assert text == pruning_log_text(sel)
    assert "heads pruned: 4 of 8" in text
    pruned0 = torch.nonzero(sel["model.layers.0.self_attn.o_proj"]).flatten().tolist()
    assert f"layer 0 (model.layers.0.self_attn.o_proj): pruned {pruned0}" in text
    assert len([ln for ln in text.splitlines() if ln[:1].isdigit()]) == 4
