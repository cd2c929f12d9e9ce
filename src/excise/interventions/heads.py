"""Head-level interventions for a ``Selection`` of unit ``head`` (True = pruned head, per layer key).

- ``mask_heads``: a context manager; a pre-hook on each output projection zeroes the pruned heads'
  slices of its input (reversible, exact restore: the weights are never touched).
- ``zero_heads``: permanent; the output projection's input columns of the pruned heads become 0
  (the same function as the mask).
- ``duplicate_heads``: the thesis's "pruning": copy the kept head's Q/K/V rows (and biases) into
  the pruned head's slots, so the model never gets smaller (kept for fidelity).
- ``merge_heads``: fold each pruned head's output-projection columns into its kept head's and zero
  the pruned head; exact where the two heads' outputs are identical.
- ``remove_heads``: physical removal (balanced budgets, no grouped-query attention, families with an
  explicit head size in the config): slices Q/K/V rows and output-projection columns and updates the
  config, so ``save_pretrained`` writes a smaller model that plain transformers loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from excise.core import Selection, require_unit
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import (
    attention_output_projections,
    decoder_layers,
    get_layout,
    head_dim,
    n_heads,
    n_kv_heads,
    weight_in_axis,
)


def _masks(model: nn.Module, selection: Selection, what: str) -> dict[str, torch.Tensor]:
    require_unit(selection, "head", what)
    sites = attention_output_projections(model)
    h = n_heads(model)
    if set(selection) - set(sites):
        extra = sorted(set(selection) - set(sites))[:3]
        raise ExciseError(
            f"head selection names {extra}, not attention output projections of this model "
            "(was it made for another model?)"
        )
    out = {}
    for key, mask in selection.items():
        if mask.dim() != 1 or mask.numel() != h:
            raise ExciseError(f"head mask for '{key}' has shape {tuple(mask.shape)}, expected ({h},)")
        if bool(mask.all()):
            raise ExciseError(f"the head selection prunes every head of '{key}'; keep at least one per layer")
        out[key] = mask
    return out


def _columns(mask: torch.Tensor, hd: int) -> torch.Tensor:
    """The output projection's input features of the selected heads, as a (heads * hd,) bool."""
    return mask.repeat_interleave(hd)


@contextmanager
def mask_heads(model: nn.Module, selection: Selection) -> Iterator[nn.Module]:
    """Zero the pruned heads' outputs (the output projection's input slices) for the block."""
    masks = _masks(model, selection, "mask_heads")
    hd = head_dim(model)
    sites = attention_output_projections(model)
    keep = {k: (~_columns(m, hd)) for k, m in masks.items()}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0]
        return (x * keep[name].to(x.device, x.dtype), *inputs[1:])

    with hooks({k: sites[k] for k in masks}, forward_pre=pre):
        yield model


def _o_weight_cols(module: nn.Module) -> tuple[torch.Tensor, int]:
    """The output projection's weight and the axis indexing its inputs (1 Linear, 0 Conv1D)."""
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w, weight_in_axis(module)


@torch.no_grad()
def zero_heads(model: nn.Module, selection: Selection) -> nn.Module:
    """Permanently zero the output projection's input columns of the pruned heads (in place)."""
    masks = _masks(model, selection, "zero_heads")
    hd = head_dim(model)
    sites = attention_output_projections(model)
    for key, mask in masks.items():
        w, axis = _o_weight_cols(sites[key])
        cols = _columns(mask, hd).to(w.device)
        if axis == 1:
            w[:, cols] = 0
        else:
            w[cols, :] = 0
    return model


def _kept_for(selection: Selection, key: str, n: int) -> list[int]:
    kept = (selection.meta.get("kept_for") or {}).get(key)
    if kept is None:
        raise ExciseError(
            "this intervention needs the kept head of every pruned head (meta['kept_for']); "
            "make the selection with excise.selection_heads.select_heads"
        )
    if len(kept) != n:
        raise ExciseError(f"meta['kept_for']['{key}'] has {len(kept)} entries, expected {n}")
    return [int(k) for k in kept]


def qkv_parts(model: nn.Module, layer: int, head: int) -> list[tuple[nn.Module, int, torch.Tensor]]:
    """Where query head ``head`` of ``layer`` lives: (module, output axis of its weight, indices).

    Key/value indices are those of the head's key/value head (shared under grouped-query attention).
    """
    lay = get_layout(model)
    block = decoder_layers(model)[layer]
    h, kv, hd = n_heads(model), n_kv_heads(model), head_dim(model)
    rng = torch.arange(hd)
    if lay.qkv is None:
        g = head // (h // kv)
        q, k, v = (block.get_submodule(p) for p in (lay.q, lay.k, lay.v))  # type: ignore[arg-type]
        return [(q, 0, head * hd + rng), (k, 0, g * hd + rng), (v, 0, g * hd + rng)]
    mod = block.get_submodule(lay.qkv)
    out_axis = 1 - weight_in_axis(mod)
    if lay.qkv_order == "per_head":
        return [(mod, out_axis, head * 3 * hd + torch.arange(3 * hd))]
    width = h * hd
    return [(mod, out_axis, torch.cat([part * width + head * hd + rng for part in range(3)]))]


@torch.no_grad()
def duplicate_heads(model: nn.Module, selection: Selection) -> nn.Module:
    """The thesis's duplication: each pruned head gets its kept head's Q/K/V weights (in place).

    Under grouped-query attention only the query rows are copied, and only within a key/value group
    (another group's keys and values are shared with other heads and cannot be copied).
    """
    masks = _masks(model, selection, "duplicate_heads")
    keys = list(attention_output_projections(model))
    h, kv = n_heads(model), n_kv_heads(model)
    for key, mask in masks.items():
        layer = keys.index(key)
        kept = _kept_for(selection, key, h)
        for head in torch.nonzero(mask).flatten().tolist():
            src = kept[head]
            if src == head:
                continue
            if kv != h and head // (h // kv) != src // (h // kv):
                raise ExciseError(
                    f"head {head} of layer {layer} and its kept head {src} use different key/value heads "
                    "(grouped-query attention); duplication cannot copy shared keys/values: use mask or merge"
                )
            dst_parts, src_parts = qkv_parts(model, layer, head), qkv_parts(model, layer, src)
            if kv != h:
                dst_parts, src_parts = dst_parts[:1], src_parts[:1]
            for (mod, axis, di), (_, _, si) in zip(dst_parts, src_parts, strict=True):
                w = mod.weight
                w.index_copy_(axis, di.to(w.device), w.index_select(axis, si.to(w.device)))
                b = getattr(mod, "bias", None)
                if isinstance(b, torch.Tensor):
                    b.index_copy_(0, di.to(b.device), b.index_select(0, si.to(b.device)))
    return model


@torch.no_grad()
def merge_heads(model: nn.Module, selection: Selection) -> nn.Module:
    """W_o[:, kept] += W_o[:, pruned], then W_o[:, pruned] = 0, for every pruned head (in place)."""
    masks = _masks(model, selection, "merge_heads")
    hd = head_dim(model)
    h = n_heads(model)
    sites = attention_output_projections(model)
    for key, mask in masks.items():
        kept = _kept_for(selection, key, h)
        w, axis = _o_weight_cols(sites[key])
        wv = w if axis == 1 else w.T  # (out, in) view, writes go to w
        pruned = torch.nonzero(mask).flatten().tolist()
        for head in pruned:
            src = kept[head]
            if src == head or mask[src]:
                raise ExciseError(
                    f"pruned head {head} of '{key}' is kept for by {src}, which is not a kept head"
                )
            wv[:, src * hd : (src + 1) * hd] += wv[:, head * hd : (head + 1) * hd]
        for head in pruned:
            wv[:, head * hd : (head + 1) * hd] = 0
    return model


def check_removable(model: nn.Module, selection: Selection) -> list[list[int]]:
    """The kept heads per layer, or an ExciseError saying why physical removal is impossible."""
    masks = _masks(model, selection, "remove_heads")
    lay = get_layout(model)
    mt = model.config.model_type  # type: ignore[attr-defined]
    if lay.qkv is not None or lay.head_dim_key is None:
        raise ExciseError(
            f"physical head removal is not available for '{mt}': its config derives the head size from "
            "hidden_size / heads, so transformers cannot load fewer heads; use merge_heads or zero_heads "
            "(the same function, the same size), or a llama-family model (llama, mistral, qwen2, smollm)"
        )
    if n_kv_heads(model) != n_heads(model):
        raise ExciseError(
            f"physical head removal needs one key/value head per query head; this model has "
            f"{n_heads(model)} query and {n_kv_heads(model)} key/value heads (grouped-query attention: "
            "removing a query head leaves its shared keys/values); use mask_heads, zero_heads or merge_heads"
        )
    sites = list(attention_output_projections(model))
    if set(masks) != set(sites):
        raise ExciseError("physical head removal needs a mask for every layer (a balanced selection)")
    counts = {int(masks[k].sum()) for k in sites}
    if len(counts) != 1:
        raise ExciseError(
            f"physical head removal needs the same number of heads pruned in every layer (balanced budget), "
            f"got per-layer counts {[int(masks[k].sum()) for k in sites]}: one config holds one head count; "
            "use budget 'balanced', or mask/merge for imbalanced budgets"
        )
    return [[h for h in range(masks[k].numel()) if not masks[k][h]] for k in sites]


def _sliced_linear(mod: nn.Linear, idx: torch.Tensor, axis: int) -> nn.Linear:
    w = mod.weight.detach().index_select(axis, idx.to(mod.weight.device))
    new = nn.Linear(w.shape[1], w.shape[0], bias=mod.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if mod.bias is not None:
            b = mod.bias.detach() if axis == 1 else mod.bias.detach().index_select(0, idx.to(w.device))
            new.bias.copy_(b)
    return new


@torch.no_grad()
def remove_heads(model: nn.Module, selection: Selection) -> nn.Module:
    """Physically remove the pruned heads (in place): smaller Q/K/V and output projections, new config."""
    keep = check_removable(model, selection)
    lay = get_layout(model)
    hd = head_dim(model)
    rng = torch.arange(hd)
    for layer, heads in enumerate(keep):
        block = decoder_layers(model)[layer]
        rows = torch.cat([h * hd + rng for h in heads])
        for path, axis in ((lay.q, 0), (lay.k, 0), (lay.v, 0), (lay.o, 1)):
            parent_path, _, leaf = str(path).rpartition(".")
            parent = block.get_submodule(parent_path)
            setattr(parent, leaf, _sliced_linear(getattr(parent, leaf), rows, axis))
    cfg = model.config  # type: ignore[attr-defined]
    n = len(keep[0])
    setattr(cfg, lay.head_dim_key, hd)  # type: ignore[arg-type]
    setattr(cfg, lay.n_heads_key, n)
    if lay.n_kv_heads_key:
        setattr(cfg, lay.n_kv_heads_key, n)
    return model
