"""SPD as a scoring method: mean causal importance per subcomponent, as ``Scores`` with unit 'subcomponent'."""

from __future__ import annotations

from typing import Any

import torch

from excise.core import Scores
from excise.spd.components import SPDModel


@torch.no_grad()
def causal_importance_scores(spd: SPDModel, x: Any) -> Scores:
    """Scores[layer] = mean over inputs (and positions) of g^l_c(x), clipped to [0, 1], shape (C,)."""
    _, acts = spd.target_forward(x)
    ci = spd.causal_importances(acts)
    tensors = {n: g.clamp(0, 1).reshape(-1, g.shape[-1]).mean(0) for n, g in ci.lower.items()}
    return Scores(tensors, unit="subcomponent", meta={"method": "spd", "C": spd.C})
