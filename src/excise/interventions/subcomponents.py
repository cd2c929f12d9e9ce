"""Subcomponent-level interventions on an SPD decomposition: switch selected rank-one pieces off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from excise.core import Selection, require_unit
from excise.errors import ExciseError


@contextmanager
def ablate_subcomponents(spd: Any, selection: Selection) -> Iterator[int]:
    """Inside the block the decomposed layers run as U diag(m) V with m_c = 0 for selected subcomponents
    (1 otherwise); every other layer keeps its weights. Yields the number switched off."""
    require_unit(selection, "subcomponent", "ablate_subcomponents")
    sizes = spd.C
    masks: dict[str, torch.Tensor] = {}
    for name, sel in selection.items():
        if name not in sizes:
            raise ExciseError(f"'{name}' is not a decomposed module; choose from {list(sizes)}")
        if tuple(sel.shape) != (sizes[name],):
            raise ExciseError(
                f"subcomponent mask for '{name}' has shape {tuple(sel.shape)}, C = {sizes[name]}"
            )
        device = spd.component(name).U.device
        masks[name] = (~sel).to(device=device, dtype=spd.component(name).U.dtype)
    with spd.replaced(masks):
        yield int(sum(int(s.sum()) for s in selection.values()))
