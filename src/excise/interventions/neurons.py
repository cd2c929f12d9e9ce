"""Neuron-level interventions: a neuron is one output row of a Linear (one output column of a GPT-2
``Conv1D``), with its bias entry. A neuron selection is turned into the equivalent weight selection,
so ``prune`` and ``ablate`` zero whole rows (and the bias) exactly like weights."""

from __future__ import annotations

import torch
from torch import nn

from excise.core import Selection, require_unit
from excise.errors import ExciseError
from excise.models.adapters import weight_in_axis


def neuron_weight_selection(model: nn.Module, selection: Selection) -> Selection:
    """Weight masks (and bias masks) of the whole rows of the selected output neurons."""
    require_unit(selection, "neuron", "neuron_weight_selection")
    mods = dict(model.named_modules())
    masks: dict[str, torch.Tensor] = {}
    for key, sel in selection.items():
        name = key.removesuffix(".weight")
        mod = mods.get(name)
        w = getattr(mod, "weight", None)
        if mod is None or not isinstance(w, torch.Tensor) or w.dim() != 2:
            raise ExciseError(
                f"neuron selection names '{key}', which is not the weight of a linear layer of this model "
                "(was it made for another model?)"
            )
        axis = weight_in_axis(mod)
        n_out = w.shape[1 - axis]
        if sel.dim() != 1 or sel.numel() != n_out:
            raise ExciseError(f"neuron mask for '{key}' has shape {tuple(sel.shape)}, expected ({n_out},)")
        masks[key] = sel[:, None].expand_as(w).clone() if axis == 1 else sel[None, :].expand_as(w).clone()
        b = getattr(mod, "bias", None)
        if isinstance(b, torch.Tensor):
            masks[f"{name}.bias"] = sel.clone()
    return Selection(masks, unit="weight", meta={"rule": "neurons", "neurons": selection.meta})
