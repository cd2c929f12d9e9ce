"""The SPD losses (Bushnaq, Braun, Sharkey 2025, arXiv 2506.20790) as small pure functions."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from excise.errors import ExciseError
from excise.spd.components import SPDModel

OUTPUT_LOSSES = ("mse", "kl")


def faithfulness_loss(spd: SPDModel) -> torch.Tensor:
    """L_faith = (1/N) Σ_l Σ_ij (W^l_ij − Σ_c U^l_ic V^l_cj)², N = number of decomposed entries."""
    total = None
    for name in spd.layer_names:
        comp = spd.component(name)
        sq = (comp.W - comp.weight()).pow(2).sum()
        total = sq if total is None else total + sq
    assert total is not None
    return total / spd.n_target_params()


def output_distance(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """D(pred, target): mse = mean over all entries of (pred − target)²; kl = mean over positions of KL(target ‖ pred)."""
    if kind == "mse":
        return (pred - target).pow(2).mean()
    if kind == "kl":
        log_q = F.log_softmax(pred.float(), dim=-1)
        log_p = F.log_softmax(target.float(), dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    raise ExciseError(f"unknown output loss '{kind}'; choose one of {', '.join(OUTPUT_LOSSES)}")


def importance_minimality_loss(
    g_upper: Mapping[str, torch.Tensor], p: float, eps: float = 1e-12
) -> torch.Tensor:
    """L_min = Σ_l Σ_c mean_batch (g^l_c + eps)^p, with g from the upper-leaky hard sigmoid (≥ 0)."""
    total = None
    for g in g_upper.values():
        term = (g + eps).pow(p).reshape(-1, g.shape[-1]).mean(0).sum()
        total = term if total is None else total + term
    if total is None:
        raise ExciseError("importance minimality needs at least one decomposed layer")
    return total


def stochastic_masks(g_lower: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """m = g + (1 − g) r with r ~ U(0, 1) drawn afresh (reparametrised: gradients flow into g)."""
    r = torch.rand(g_lower.shape, generator=generator, device=g_lower.device, dtype=g_lower.dtype)
    return g_lower + (1.0 - g_lower) * r


def delta_masks(
    masks: Mapping[str, torch.Tensor | None],
    g_lower: Mapping[str, torch.Tensor],
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One r ~ U(0, 1) per input (and position) for the residual W − UV of every layer in ``masks``."""
    out = {}
    for name in masks:
        g = g_lower[name]
        out[name] = torch.rand(g.shape[:-1], generator=generator, device=g.device, dtype=g.dtype)
    return out


def annealed_p(
    step: int, total_steps: int, p_start: float, p_end: float, start_frac: float, end_frac: float
) -> float:
    """p linearly annealed from p_start (before start_frac·T) to p_end (after end_frac·T)."""
    t0, t1 = start_frac * total_steps, end_frac * total_steps
    if p_start == p_end or step <= t0:
        return p_start
    if step >= t1:
        return p_end
    return p_start + (p_end - p_start) * (step - t0) / (t1 - t0)
