"""Head scores -> head Selection: duplicate-head clustering, per-layer budgets, and the pruning log.

Heads of one layer are clustered hierarchically on their distance matrix (``scipy``): Ward linkage
only for euclidean distances (Ward assumes them), average linkage otherwise. The cluster's medoid
(the member with the least summed distance to the others; ties to the lower index, or judged on a
second distance matrix, the thesis's ``group_metric``) is kept, every other member is pruned as
its duplicate. A layer with budget k is cut into (heads - k) clusters.

Budgets (how many heads each layer loses):
``balanced``: floor(fraction * heads) in every layer;
``imbalanced``: a global budget floor(fraction * all heads), per-layer counts from the closest
within-layer pairs (the k globally closest pairs each give their layer one count);
``importance``: the global budget spread like the heads of lowest gradient importance;
``random``: random heads (the baseline), each "kept for" by its nearest kept head.
Every layer keeps at least one head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from excise.core import Scores, Selection, require_unit
from excise.errors import ExciseError
from excise.selection import count_for
from excise.utils import atomic_write_json, atomic_write_text

BUDGETS = ("balanced", "imbalanced", "importance", "random")


def check_head_fraction(fraction: float) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0.0 <= float(fraction) < 1.0
    ):
        raise ExciseError(
            f"the fraction of heads to prune must be in [0, 1), got {fraction!r} (every layer keeps a head)"
        )
    return float(fraction)


def linkage_for(metric: str) -> str:
    """Ward only for euclidean distances; average linkage for any other distance."""
    return "ward" if metric == "euclidean" else "average"


def cluster_heads(d: torch.Tensor | np.ndarray, n_clusters: int, method: str) -> np.ndarray:
    """Cluster labels 0..n_clusters-1 (numbered by first member) from a (n, n) distance matrix."""
    from scipy.cluster.hierarchy import cut_tree, linkage
    from scipy.spatial.distance import squareform

    dm = np.asarray(d, dtype=np.float64)
    n = dm.shape[0]
    if not 1 <= n_clusters <= n:
        raise ExciseError(f"cannot cut {n} heads into {n_clusters} clusters")
    if n_clusters == n:
        return np.arange(n)
    dm = (dm + dm.T) / 2
    np.fill_diagonal(dm, 0.0)
    z = linkage(squareform(dm, checks=False), method=method)
    raw = cut_tree(z, n_clusters=n_clusters).reshape(-1)
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(c), len(order)) for c in raw])


def medoid(d: torch.Tensor | np.ndarray, members: list[int]) -> int:
    """The member with the least summed distance to the other members (ties: the lower index)."""
    dm = np.asarray(d, dtype=np.float64)
    sums = [float(dm[m, members].sum()) for m in members]
    return members[int(np.argmin(sums))]


def _pairs_budget(dists: list[np.ndarray], total: int) -> list[int]:
    """Per-layer counts from the ``total`` closest within-layer pairs (each layer keeps one head)."""
    pairs = []
    for li, d in enumerate(dists):
        n = d.shape[0]
        for i in range(n):
            for j in range(i + 1, n):
                pairs.append((float(d[i, j]), li, i, j))
    pairs.sort()
    counts = [0] * len(dists)
    for _, li, _, _ in pairs:
        if sum(counts) >= total:
            break
        if counts[li] < dists[li].shape[0] - 1:
            counts[li] += 1
    return counts


def _ranked_budget(order: list[tuple[int, int]], n_heads: list[int], total: int) -> tuple[list[int], list]:
    """Per-layer counts from heads taken in ``order`` (layer, head); each layer keeps one head."""
    counts = [0] * len(n_heads)
    taken = []
    for li, h in order:
        if len(taken) >= total:
            break
        if counts[li] < n_heads[li] - 1:
            counts[li] += 1
            taken.append((li, h))
    return counts, taken


def select_heads(
    scores: Scores,
    fraction: float,
    budget: str = "balanced",
    importance: Scores | None = None,
    group_scores: Scores | None = None,
    seed: int = 0,
) -> Selection:
    """Heads to prune (True) per layer, with the log of cluster, kept head, distance and reason."""
    require_unit(scores, "head", "select_heads")
    fraction = check_head_fraction(fraction)
    if budget not in BUDGETS:
        raise ExciseError(f"unknown head budget '{budget}'; choose one of {', '.join(BUDGETS)}")
    if "distance" not in scores.companions:
        raise ExciseError("select_heads needs head-distance scores (method 'heads'), which carry distances")
    keys = list(scores)
    dists = [scores.companions["distance"][k].double().numpy() for k in keys]
    group = dists
    if group_scores is not None:
        require_unit(group_scores, "head", "select_heads (group_scores)")
        if list(group_scores) != keys or "distance" not in group_scores.companions:
            raise ExciseError("group_scores must be head-distance scores of the same model")
        group = [group_scores.companions["distance"][k].double().numpy() for k in keys]
    n_heads = [d.shape[0] for d in dists]
    total = count_for(fraction, sum(n_heads)) if fraction > 0 else 0
    metric = str(scores.meta.get("metric", "cosine"))
    method = linkage_for(metric)
    random_heads: set[tuple[int, int]] = set()
    if budget == "balanced":
        counts = [count_for(fraction, n) if fraction > 0 else 0 for n in n_heads]
        counts = [min(c, n - 1) for c, n in zip(counts, n_heads, strict=True)]
    elif budget == "imbalanced":
        counts = _pairs_budget(dists, total)
    elif budget == "importance":
        if importance is None:
            raise ExciseError("budget 'importance' needs head-importance scores (method 'head-importance')")
        require_unit(importance, "head", "select_heads (importance)")
        if list(importance) != keys:
            raise ExciseError("the importance scores are of another model (their layer keys differ)")
        flat = [(float(importance[k][h]), li, h) for li, k in enumerate(keys) for h in range(n_heads[li])]
        counts, _ = _ranked_budget([(li, h) for _, li, h in sorted(flat)], n_heads, total)
    else:
        gen = torch.Generator().manual_seed(seed)
        every = [(li, h) for li in range(len(keys)) for h in range(n_heads[li])]
        perm = torch.randperm(len(every), generator=gen).tolist()
        counts, taken = _ranked_budget([every[i] for i in perm], n_heads, total)
        random_heads = set(taken)

    masks: dict[str, torch.Tensor] = {}
    log: list[dict[str, Any]] = []
    kept_for: dict[str, list[int]] = {}
    for li, key in enumerate(keys):
        n, d = n_heads[li], dists[li]
        pruned = torch.zeros(n, dtype=torch.bool)
        kept = list(range(n))
        if budget == "random":
            gone = sorted(h for l2, h in random_heads if l2 == li)
            keep = [h for h in range(n) if h not in gone]
            labels = np.array([keep.index(h) if h in keep else -1 for h in range(n)])
            for h in gone:
                near = min(keep, key=lambda k, h=h: (d[h, k], k))
                labels[h] = keep.index(near)
            medoids = dict(enumerate(keep))
        else:
            labels = cluster_heads(d, n - counts[li], method)
            medoids = {
                int(c): medoid(group[li], [h for h in range(n) if labels[h] == c])
                for c in sorted(set(labels))
            }
        for h in range(n):
            m = medoids[int(labels[h])]
            kept[h] = m
            if m == h:
                continue
            pruned[h] = True
            reason = (
                "random baseline"
                if budget == "random"
                else f"duplicate in {method}-linkage cluster on {metric}"
            )
            log.append(
                {
                    "layer": li,
                    "head": h,
                    "key": key,
                    "cluster": int(labels[h]),
                    "kept": m,
                    "distance": float(d[h, m]),
                    "reason": reason,
                }
            )
        masks[key] = pruned
        kept_for[key] = kept
    return Selection(
        masks,
        unit="head",
        meta={
            "rule": "heads",
            "budget": budget,
            "fraction": fraction,
            "metric": metric,
            "linkage": method,
            "representation": scores.meta.get("representation"),
            "group_metric": None if group_scores is None else group_scores.meta.get("metric"),
            "per_layer": counts,
            "n_heads": n_heads,
            "n_kv_heads": scores.meta.get("n_kv_heads"),
            "kept_for": kept_for,
            "log": log,
            "seed": seed,
        },
    )


def pruning_log_text(selection: Selection) -> str:
    """The pruning log as text: a header, one line per layer, then one line per pruned head."""
    require_unit(selection, "head", "pruning_log_text")
    meta = selection.meta
    lines = [
        f"# heads pruned: {selection.count()} of {selection.numel()} "
        f"(fraction {meta.get('fraction')}, budget {meta.get('budget')}, metric {meta.get('metric')}, "
        f"linkage {meta.get('linkage')})"
    ]
    for li, (key, mask) in enumerate(selection.items()):
        pruned = [int(i) for i in torch.nonzero(mask).flatten()]
        keep = [h for h in range(mask.numel()) if h not in pruned]
        lines.append(f"layer {li} ({key}): pruned {pruned} kept {keep}")
    lines.append("# layer head cluster kept distance reason")
    for r in meta.get("log", []):
        lines.append(
            f"{r['layer']}\t{r['head']}\t{r['cluster']}\t{r['kept']}\t{r['distance']:.6g}\t{r['reason']}"
        )
    return "\n".join(lines) + "\n"


def write_pruning_log(selection: Selection, out_dir: str | Path) -> tuple[Path, Path]:
    """``pruning_log.json`` (every record and the settings) and ``pruning_log.txt`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath, tpath = out / "pruning_log.json", out / "pruning_log.txt"
    meta = dict(selection.meta)
    body = {
        "settings": {k: v for k, v in meta.items() if k not in ("log", "kept_for")},
        "pruned": meta.get("log", []),
        "kept_for": meta.get("kept_for", {}),
        "per_layer_pruned": {k: [int(i) for i in torch.nonzero(v).flatten()] for k, v in selection.items()},
    }
    json.dumps(body)  # fail before writing if something is not serialisable
    atomic_write_json(jpath, body)
    atomic_write_text(tpath, pruning_log_text(selection))
    return jpath, tpath
