"""Head-level scoring (unit ``head``): per-head representations, distances between heads, and the
gradient head importance of Michel et al. (2019).

A head's *output* is its slice of the input of the layer's attention output projection, reshaped
(batch, tokens, heads, head size): one forward pre-hook per layer collects every head of every
layer in one forward pass. A head's *pattern* is its softmax attention matrix (lower triangle,
padding excluded), read with eager attention for that pass only (SDPA returns no weights).

Distances are computed from a streamed Gram matrix over all heads of all layers,
G_ab = sum over valid tokens (or (query, key) pairs) of <r_a, r_b>, accumulated in float64:
``euclidean`` d_ab = sqrt((G_aa + G_bb - 2 G_ab) / N) (root-mean-square over the N positions),
``cosine`` d_ab = 1 - G_ab / sqrt(G_aa G_bb), ``random`` a seeded symmetric uniform matrix
(baseline). The score of a head is its distance to the nearest other head of its layer (higher =
more distinct = more important); the within-layer matrices and the all-heads matrix are companions.

Under grouped-query attention the query heads are the units; ``meta["kv_group"]`` says which
key/value head each uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from excise.core import Scores
from excise.data import IGNORE, Batch
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import (
    attention_output_projections,
    get_layout,
    head_dim,
    n_heads,
    n_kv_heads,
)
from excise.scoring.base import eval_mode, input_device
from excise.utils import progress

METRICS = ("euclidean", "cosine", "random")
REPRESENTATIONS = ("output", "pattern")


def head_sites(model: nn.Module) -> dict[str, nn.Module]:
    """Layer key (the output projection's module name) -> output projection, in layer order."""
    get_layout(model)  # the ExciseError naming the supported families comes first
    return attention_output_projections(model)


def head_info(model: nn.Module) -> dict[str, Any]:
    """Heads per layer, key/value heads, head size and the key/value head of each query head."""
    h, kv = n_heads(model), n_kv_heads(model)
    return {
        "n_layers": len(head_sites(model)),
        "n_heads": h,
        "n_kv_heads": kv,
        "head_dim": head_dim(model),
        "kv_group": [q // (h // kv) for q in range(h)],
    }


def valid_positions(batch: Batch, positions: str = "all") -> torch.Tensor:
    """(B, T) bool: the tokens a head representation covers; padding is always excluded."""
    if positions == "all":
        return batch.attention_mask.bool()
    if positions == "response":
        return batch.labels != IGNORE
    raise ExciseError(f"unknown positions '{positions}'; choose 'all' or 'response'")


def _forward(model: nn.Module, batch: Batch, **extra: Any) -> Any:
    dev = input_device(model)
    return model(
        input_ids=batch.input_ids.to(dev),
        attention_mask=batch.attention_mask.to(dev),
        use_cache=False,
        **extra,
    )


def head_outputs(model: nn.Module, batch: Batch) -> list[torch.Tensor]:
    """Every head's output in one forward pass: per layer a (B, T, heads, head size) float32 tensor."""
    sites = head_sites(model)
    h, hd = n_heads(model), head_dim(model)
    got: dict[str, torch.Tensor] = {}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        got[name] = x.detach().float().reshape(*x.shape[:-1], h, hd)

    with eval_mode(model), torch.no_grad(), hooks(sites, forward_pre=pre):
        _forward(model, batch)
    return [got[k].cpu() for k in sites]


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch the model to eager attention for the block (SDPA returns no attention weights)."""
    cfg = model.config  # type: ignore[attr-defined]
    old = getattr(cfg, "_attn_implementation", None)
    switch = old not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")  # type: ignore[operator]
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(old)  # type: ignore[operator]


def attention_patterns(model: nn.Module, batch: Batch) -> list[torch.Tensor]:
    """Every head's softmax attention pattern: per layer a (B, heads, T, T) float32 tensor."""
    with eval_mode(model), torch.no_grad(), eager_attention(model):
        out = _forward(model, batch, output_attentions=True)
    att = getattr(out, "attentions", None)
    if not att or any(a is None for a in att):
        raise ExciseError(
            f"{type(model).__name__} returned no attention weights even with eager attention; "
            "use representation='output'"
        )
    return [a.detach().float().cpu() for a in att]


def _output_rows(outs: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    """(L*H, N*hd): every head's output at the N valid tokens, heads of all layers stacked."""
    per = [o[valid] for o in outs]  # (N, H, hd) each
    x = torch.stack(per, 1)  # (N, L, H, hd)
    n, layers, h, hd = x.shape
    return x.permute(1, 2, 0, 3).reshape(layers * h, n * hd)


def _pattern_rows(atts: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    """(L*H, M): every head's attention weight at the M valid (query, key) pairs with key <= query."""
    t = valid.shape[1]
    tri = torch.ones(t, t, dtype=torch.bool).tril()
    pair = valid[:, :, None] & valid[:, None, :] & tri  # (B, Tq, Tk)
    rows = [a.permute(1, 0, 2, 3)[:, pair] for a in atts]  # (H, M) each
    return torch.cat(rows, 0)


def head_gram(
    model: nn.Module,
    batches: Sequence[Batch],
    representation: str = "output",
    positions: str = "all",
) -> tuple[torch.Tensor, int]:
    """G (L*H, L*H) float64, G_ab = sum over valid positions of <r_a, r_b>, and the number of positions."""
    if representation not in REPRESENTATIONS:
        raise ExciseError(f"unknown head representation '{representation}'; choose one of {REPRESENTATIONS}")
    gram: torch.Tensor | None = None
    count = 0
    for batch in progress(batches, desc=f"head {representation}s", total=len(batches)):
        valid = valid_positions(batch, positions)
        if not bool(valid.any()):
            continue
        if representation == "output":
            rows = _output_rows(head_outputs(model, batch), valid)
            count += int(valid.sum())
        else:
            rows = _pattern_rows(attention_patterns(model, batch), valid)
            count += rows.shape[1]
        g = rows.double() @ rows.double().T
        gram = g if gram is None else gram + g
    if gram is None:
        raise ExciseError(f"the data has no {positions} tokens to compare heads on; pass other prompts")
    return gram, count


def distances_from_gram(gram: torch.Tensor, count: int, metric: str) -> torch.Tensor:
    """Pairwise head distances (float64) from a Gram matrix over ``count`` positions."""
    diag = gram.diagonal()
    if metric == "euclidean":
        sq = (diag[:, None] + diag[None, :] - 2 * gram).clamp_min(0) / max(count, 1)
        d = sq.sqrt()
    elif metric == "cosine":
        norm = diag.clamp_min(0).sqrt()
        denom = norm[:, None] * norm[None, :]
        cos = torch.where(denom > 0, gram / denom.clamp_min(1e-300), torch.zeros_like(gram))
        d = (1 - cos).clamp(0, 2)
    else:
        raise ExciseError(f"unknown head distance metric '{metric}'; choose one of {METRICS}")
    d.fill_diagonal_(0)
    return d


def random_distances(n: int, seed: int) -> torch.Tensor:
    """A symmetric (n, n) matrix of U(0, 1) distances with a zero diagonal (the random baseline)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, n, generator=gen, dtype=torch.float64).triu(1)
    return u + u.T


def nearest_other(d: torch.Tensor) -> torch.Tensor:
    """Per head, the distance to the nearest other head (+inf on the diagonal is excluded)."""
    if d.shape[0] < 2:
        return torch.zeros(d.shape[0], dtype=d.dtype)
    off = d + torch.diag(torch.full((d.shape[0],), float("inf"), dtype=d.dtype))
    return off.min(1).values


def head_distance_scores(
    model: nn.Module,
    batches: Sequence[Batch],
    metric: str = "cosine",
    representation: str = "output",
    positions: str = "all",
    seed: int = 0,
) -> Scores:
    """Scores of unit ``head``: per layer (heads,) nearest-neighbour distance; distance companions."""
    if metric not in METRICS:
        raise ExciseError(f"unknown head distance metric '{metric}'; choose one of {', '.join(METRICS)}")
    sites = list(head_sites(model))
    info = head_info(model)
    h = info["n_heads"]
    if metric == "random":
        full = random_distances(len(sites) * h, seed)
        count = 0
    else:
        gram, count = head_gram(model, batches, representation, positions)
        full = distances_from_gram(gram, count, metric)
    per_layer = {k: full[i * h : (i + 1) * h, i * h : (i + 1) * h].clone() for i, k in enumerate(sites)}
    tensors = {k: nearest_other(d) for k, d in per_layer.items()}
    return Scores(
        tensors,
        unit="head",
        meta={
            **info,
            "metric": metric,
            "representation": representation,
            "positions": positions,
            "n_positions": count,
            "layers": sites,
            "n_batches": len(batches),
        },
        companions={"distance": per_layer, "distance_all": {"heads": full}},
        companion_doc={
            "distance": f"{metric} distance between the heads of one layer, (heads, heads) per layer key",
            "distance_all": f"{metric} distance between all heads, (layers*heads)^2, layer-major order",
        },
    )


def gate_gradients(model: nn.Module, batch: Batch) -> torch.Tensor:
    """(B, L, H): dL_b / d xi_{l,h} at xi = 1, with a gate xi on each head's output per sample b.

    L_b is the mean next-token NLL over sample b's response tokens (as in snip). The gates are
    per sample, so one backward pass of sum_b L_b gives every sample's own gradient.
    """
    from excise.scoring.snip import sample_losses

    sites = head_sites(model)
    h, hd = n_heads(model), head_dim(model)
    b = len(batch)
    gates = {k: torch.ones(b, h, requires_grad=True) for k in sites}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0]
        g = gates[name].to(x.device, x.dtype)
        y = (x.reshape(*x.shape[:-1], h, hd) * g[:, None, :, None]).reshape(x.shape)
        return (y, *inputs[1:])

    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with eval_mode(model), hooks(sites, forward_pre=pre):
            out = _forward(model, batch)
            sample_losses(out.logits, batch).sum().backward()
    finally:
        for p, f in flags:
            p.requires_grad_(f)
    return torch.stack([gates[k].grad for k in sites], 1)  # type: ignore[misc]


def head_importance_scores(model: nn.Module, batches: Sequence[Batch], normalize: bool = True) -> Scores:
    """Michel et al. (2019): I_h = E_x |dL(x)/d xi_h|, optionally divided by its layer's L2 norm."""
    sites = list(head_sites(model))
    total: torch.Tensor | None = None
    n = 0
    for batch in progress(batches, desc="head importance", total=len(batches)):
        has = (batch.labels != IGNORE).any(1)
        if not bool(has.any()):
            continue
        g = gate_gradients(model, batch).abs()[has].sum(0).double()
        total = g if total is None else total + g
        n += int(has.sum())
    if total is None:
        raise ExciseError("head importance needs response tokens (the loss); the data has none")
    imp = total / n
    raw = imp.clone()
    if normalize:
        imp = imp / imp.norm(dim=1, keepdim=True).clamp_min(1e-20)
    tensors = {k: imp[i] for i, k in enumerate(sites)}
    return Scores(
        tensors,
        unit="head",
        meta={**head_info(model), "normalize": normalize, "layers": sites, "n_samples": n},
        companions={"raw_importance": {k: raw[i] for i, k in enumerate(sites)}},
        companion_doc={"raw_importance": "E|dL/dxi_h| per layer before the per-layer normalisation"},
    )
