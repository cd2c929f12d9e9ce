"""Weight-level interventions: ``prune`` (zero, or restore from a base model) and ``ablate`` (reversible).

Both take a selection of unit ``weight`` or ``neuron`` (whole output rows, see ``neurons.py``).
Tied tensors (e.g. BLOOM's ``lm_head.weight`` and ``transformer.word_embeddings.weight``) are one
tensor: masks naming both aliases are merged, so ablating restores them exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from excise.core import Selection, require_unit
from excise.errors import ExciseError


def _targets(model: nn.Module, selection: Selection) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Parameter and mask (on the parameter's device) per distinct tensor; aliases' masks are merged."""
    if selection.unit not in ("weight", "neuron"):
        raise ExciseError(
            f"prune/ablate take a selection of weights (unit 'weight' or 'neuron'), got unit "
            f"'{selection.unit}' (use the intervention of that unit, e.g. ablate_subcomponents)"
        )
    if selection.unit == "neuron":
        from excise.interventions.neurons import neuron_weight_selection

        selection = neuron_weight_selection(model, selection)
    require_unit(selection, "weight", "prune/ablate")
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = [k for k in selection if k not in params]
    if missing:
        some = ", ".join(list(params)[:3])
        raise ExciseError(
            f"{len(missing)} selected tensor(s) are not parameters of this model, e.g. '{missing[0]}' "
            f"(the model has e.g. {some}); was the mask made for another model?"
        )
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    first_name: dict[int, str] = {}
    for k, mask in selection.items():
        p = params[k]
        if tuple(p.shape) != tuple(mask.shape):
            raise ExciseError(
                f"mask for '{k}' has shape {tuple(mask.shape)} but the parameter is {tuple(p.shape)}"
            )
        m = mask.to(p.device)
        owner = first_name.setdefault(id(p), k)
        if owner != k:  # the same tensor under another name: one mask for both
            out[owner] = (p, out[owner][1] | m)
        else:
            out[k] = (p, m)
    return out


def prune(model: nn.Module, selection: Selection, base: nn.Module | None = None) -> int:
    """Zero the selected weights in place (or set them to ``base``'s values); returns how many were set."""
    targets = _targets(model, selection)
    base_params = dict(base.named_parameters(remove_duplicate=False)) if base is not None else {}
    if base is not None:
        for k, (p, _) in targets.items():
            if k not in base_params or base_params[k].shape != p.shape:
                raise ExciseError(f"the base model has no parameter '{k}' of shape {tuple(p.shape)}")
    n = 0
    with torch.no_grad():
        for k, (p, mask) in targets.items():
            if base is None:
                p.masked_fill_(mask, 0)
            else:
                src = base_params[k].detach().to(device=p.device, dtype=p.dtype)
                p.copy_(torch.where(mask, src, p))
            n += int(mask.sum())
    return n


@contextmanager
def ablate(model: nn.Module, selection: Selection) -> Iterator[int]:
    """Zero the selected weights inside the block; afterwards (also on error) they are bit-identical to before."""
    targets = _targets(model, selection)
    saved: dict[str, torch.Tensor] = {}
    n = 0
    try:
        with torch.no_grad():
            for k, (p, mask) in targets.items():
                saved[k] = p.detach()[mask].clone()
                p.masked_fill_(mask, 0)
                n += int(mask.sum())
        yield n
    finally:
        with torch.no_grad():
            for k, vals in saved.items():
                p, mask = targets[k]
                p[mask] = vals
