"""Recovery metrics for SPD: MMCS / ML2R, causal-importance matrices, alive counts, masked reconstruction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from excise.spd.components import SPDModel
from excise.spd.losses import delta_masks, output_distance, stochastic_masks

# ----------------------------------------------------------------------------------------------------
# Ground-truth recovery of TMS columns
# ----------------------------------------------------------------------------------------------------


def column_cosines(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(U_c V_cj, W_:j) and ‖U_c V_cj‖ / ‖W_:j‖ for every subcomponent c and column j, shape (C, n_cols)."""
    W, U, V = W.detach().float(), U.detach().float(), V.detach().float()
    unorm = U.norm(dim=0)  # (C,)
    wnorm = W.norm(dim=0).clamp_min(1e-12)  # (n_cols,)
    dots = (U.T @ W) * V  # (C, n_cols): (U_c · W_j) V_cj
    col_norm = unorm.unsqueeze(1) * V.abs()  # ‖U_c V_cj‖
    cos = dots / (col_norm * wnorm).clamp_min(1e-12)
    return cos, col_norm / wnorm


def mmcs_ml2r(
    W: torch.Tensor, U: torch.Tensor, V: torch.Tensor, min_norm_frac: float = 0.1
) -> dict[str, Any]:
    """MMCS = mean_j max_c cos(U_c V_cj, W_:j); ML2R = mean_j ‖U_c* V_c*j‖ / ‖W_:j‖ at the argmax c*.

    The max runs over subcomponents whose column j has at least ``min_norm_frac`` of ‖W_:j‖: a leftover
    of negligible norm that happens to point the same way (a near-tie at cosine 1) would otherwise make
    ML2R jump to ~0 for that feature. ``mmcs_all`` / ``ml2r_all`` give the literal paper definition (max
    over every c). Features without any such subcomponent fall back to all c.
    """
    cos, ratio = column_cosines(W, U, V)
    n = cos.shape[1]
    idx = torch.arange(n)

    def pick(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        best = c.argmax(dim=0)
        return c[best, idx], ratio[best, idx]

    cos_all, ratio_all = pick(cos)
    big = ratio >= min_norm_frac
    masked = torch.where(big, cos, torch.full_like(cos, -2.0))
    has = big.any(dim=0)
    cos_big, ratio_big = pick(masked)
    cos_sel = torch.where(has, cos_big, cos_all)
    ratio_sel = torch.where(has, ratio_big, ratio_all)
    best = torch.where(has, masked.argmax(0), cos.argmax(0))
    return {
        "mmcs": float(cos_sel.mean()),
        "ml2r": float(ratio_sel.mean()),
        "min_cos": float(cos_sel.min()),
        "mmcs_all": float(cos_all.mean()),
        "ml2r_all": float(ratio_all.mean()),
        "best_subcomponent": [int(b) for b in best],
    }


def mechanism_mmcs(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> float:
    """Strict variant: mean_j max_c cos(vec(U_c V_cᵀ), vec(W_:j e_jᵀ)) over whole rank-one matrices."""
    W, U, V = W.detach().float(), U.detach().float(), V.detach().float()
    sub_norm = U.norm(dim=0) * V.norm(dim=1)  # ‖U_c V_cᵀ‖_F
    dots = (U.T @ W) * V  # <U_c V_cᵀ, W_:j e_jᵀ>
    cos = dots / (sub_norm.unsqueeze(1) * W.norm(dim=0).unsqueeze(0)).clamp_min(1e-12)
    return float(cos.max(dim=0).values.mean())


# ----------------------------------------------------------------------------------------------------
# Causal-importance matrices
# ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def causal_importance_on(spd: SPDModel, x: Any) -> dict[str, torch.Tensor]:
    """g^l (clipped to [0, 1]) of every decomposed layer on inputs x, flattened to (n_inputs, C)."""
    _, acts = spd.target_forward(x)
    ci = spd.causal_importances(acts)
    return {n: g.clamp(0, 1).reshape(-1, g.shape[-1]).cpu() for n, g in ci.lower.items()}


def one_hot_inputs(n_features: int, value: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """value · e_i for every feature i, shape (n_features, n_features)."""
    return value * torch.eye(n_features, device=device)


def match_columns(ci: torch.Tensor) -> list[int]:
    """Column order: the Hungarian matching of features (rows) to subcomponents maximising total CI, then the rest by max CI."""
    arr = ci.detach().cpu().numpy().astype(np.float64)
    rows, cols = linear_sum_assignment(-arr)
    matched = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    rest = [c for c in np.argsort(-arr.max(axis=0), kind="stable").tolist() if c not in set(matched)]
    return matched + [int(c) for c in rest]


def pattern_ci_errors(ci: torch.Tensor, expected: torch.Tensor, threshold: float = 0.5) -> dict[str, Any]:
    """Errors against an expected pattern E (inputs x mechanisms, 0/1): mechanisms are matched to
    subcomponents by the Hungarian method (cost Σ_j |E_jk − g_jc| − Σ_j g_jc); errors = entries of the
    thresholded matched columns that differ from E plus active entries of unmatched subcomponents."""
    active = (ci > threshold).float()
    E = expected.float()
    k = E.shape[1]
    cost = (E.unsqueeze(2) - ci.unsqueeze(1)).abs().sum(0) - ci.sum(0).unsqueeze(0)  # (k, C)
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy().astype(np.float64))
    matched = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    errors = sum(int((active[:, c] != E[:, m]).sum()) for m, c in enumerate(matched))
    errors += sum(int(active[:, c].sum()) for c in range(ci.shape[1]) if c not in set(matched))
    errors += int(E[:, len(matched) :].sum()) if len(matched) < k else 0  # mechanisms without a subcomponent
    order = matched + [c for c in match_columns(ci) if c not in set(matched)]
    return {"errors": errors, "order": order}


def identity_ci_errors(ci: torch.Tensor, threshold: float = 0.5) -> dict[str, Any]:
    """Errors against 'one subcomponent per feature': after matching, entries of the n x n block ≠ I, plus active unmatched columns."""
    return pattern_ci_errors(ci, torch.eye(ci.shape[0]), threshold)


def dense_ci_errors(ci: torch.Tensor, k: int, threshold: float = 0.5) -> dict[str, Any]:
    """Errors against 'k subcomponents active on every input, the rest on none' (columns ranked by mean CI)."""
    order = np.argsort(-ci.mean(0).numpy(), kind="stable").tolist()
    active = ci[:, order] > threshold
    errors = int((~active[:, :k]).sum()) + int(active[:, k:].sum())
    return {"errors": errors, "order": [int(o) for o in order]}


# ----------------------------------------------------------------------------------------------------
# Alive counts and reconstruction
# ----------------------------------------------------------------------------------------------------


def alive_counts(ci: Mapping[str, torch.Tensor], threshold: float = 0.1) -> dict[str, int]:
    """Number of subcomponents with CI > threshold on at least one input, per layer."""
    return {n: int((g.reshape(-1, g.shape[-1]).amax(0) > threshold).sum()) for n, g in ci.items()}


@torch.no_grad()
def reconstruction(
    spd: SPDModel, x: Any, kind: str, generator: torch.Generator | None = None, delta: bool = False
) -> dict[str, float]:
    """D(masked output, target output) under CI masks, stochastic masks, all-ones and all-zero masks (all layers).

    With ``delta`` also 'stochastic_masked_delta': stochastic masks plus the randomly scaled W − UV, as
    trained with the delta component.
    """
    target_out, acts = spd.target_forward(x)
    ci = spd.causal_importances(acts)
    names = spd.layer_names
    out: dict[str, float] = {}
    mask_sets: dict[str, Mapping[str, torch.Tensor | None]] = {
        "ci_masked": {n: ci.lower[n] for n in names},
        "stochastic_masked": {n: stochastic_masks(ci.lower[n], generator) for n in names},
        "unmasked": dict.fromkeys(names),
        "zero_masked": {n: torch.zeros_like(ci.lower[n]) for n in names},
    }
    for label, masks in mask_sets.items():
        out[label] = float(output_distance(spd(x, masks), target_out, kind))
    if delta:
        masks = mask_sets["stochastic_masked"]
        out["stochastic_masked_delta"] = float(
            output_distance(spd(x, masks, None, delta_masks(masks, ci.lower, generator)), target_out, kind)
        )
    out["layerwise_ci_masked"] = float(
        np.mean([float(output_distance(spd(x, {n: ci.lower[n]}), target_out, kind)) for n in names])
    )
    l0 = {n: float((ci.lower[n] > 0).float().sum(-1).mean()) for n in names}
    out["mean_l0"] = float(np.sum(list(l0.values())))
    return out


# ----------------------------------------------------------------------------------------------------
# Residual MLP: neuron contributions
# ----------------------------------------------------------------------------------------------------


def neuron_contributions(W_E: torch.Tensor, W_in: torch.Tensor, W_out: torch.Tensor) -> torch.Tensor:
    """Contribution of each neuron to each feature: (W_E[i] W_out) ⊙ (W_in W_E[i]), shape (n_features, d_mlp)."""
    read = W_E @ W_out  # (F, d_mlp): W_U[i,:] W_out with W_U = W_Eᵀ
    write = W_E @ W_in.T  # (F, d_mlp): W_in W_E[:, i]
    return read * write


def resid_mlp_recovery(
    spd: SPDModel,
    W_E: torch.Tensor,
    in_names: Sequence[str],
    out_names: Sequence[str],
    one_hot_value: float = 0.75,
    threshold: float = 0.5,
    cos_threshold: float = 0.9,
) -> dict[str, Any]:
    """Per feature: W_in subcomponents active on its one-hot input, and neuron-contribution match with the target.

    A feature is recovered when every layer has at most one active W_in subcomponent for it (at least one
    in total), none of them is active for another feature, and the contributions of those subcomponents
    (with the summed W_out components) have cosine ≥ cos_threshold with the target's.
    """
    n_feat = W_E.shape[0]
    ci = causal_importance_on(spd, one_hot_inputs(n_feat, one_hot_value, W_E.device))
    W_E = W_E.detach().float().cpu()
    per_layer_target, per_layer_sub = [], []
    n_active = torch.zeros(n_feat, dtype=torch.long)
    ok = torch.ones(n_feat, dtype=torch.bool)
    for lin, lout in zip(in_names, out_names, strict=True):
        g = ci[lin]  # (F, C)
        active = g > threshold
        n_act = active.sum(1)
        shared = active.sum(0) > 1  # subcomponents active for several features
        ok &= n_act <= 1
        ok &= ~(active & shared.unsqueeze(0)).any(1)
        n_active += n_act
        c_in, c_out = spd.component(lin), spd.component(lout)
        target_contrib = neuron_contributions(W_E, c_in.W.cpu(), c_out.W.cpu())
        order = match_columns(g)[:n_feat]
        U_in, V_in = c_in.U.detach().float().cpu(), c_in.V.detach().float().cpu()
        W_out_sum = c_out.weight().detach().float().cpu()
        read = W_E @ W_out_sum
        sub = torch.zeros_like(target_contrib)
        for i in range(n_feat):
            m = order[i] if i < len(order) else 0
            write = (V_in[m] @ W_E[i]) * U_in[:, m]  # U_in[:, m] V_in[m, :] W_E[i]
            sub[i] = read[i] * write * (1.0 if active[i, m] else 0.0)
        per_layer_target.append(target_contrib)
        per_layer_sub.append(sub)
    tgt = torch.cat(per_layer_target, dim=1)
    sub = torch.cat(per_layer_sub, dim=1)
    cos = (tgt * sub).sum(1) / (tgt.norm(dim=1) * sub.norm(dim=1)).clamp_min(1e-12)
    ratio = sub.norm(dim=1) / tgt.norm(dim=1).clamp_min(1e-12)
    recovered = ok & (n_active >= 1) & (cos >= cos_threshold)
    return {
        "n_features": n_feat,
        "n_recovered": int(recovered.sum()),
        "n_one_subcomponent": int((ok & (n_active >= 1)).sum()),
        "contribution_cos_mean": float(cos.mean()),
        "contribution_norm_ratio_mean": float(ratio.mean()),
        "target_contributions": tgt,
        "subcomponent_contributions": sub,
    }


def tms_metrics(spd: SPDModel, W: torch.Tensor, name: str = "linear1") -> dict[str, float]:
    """MMCS, ML2R and strict MMCS of the decomposed W of a TMS model."""
    comp = spd.component(name)
    m = mmcs_ml2r(W, comp.U, comp.V)
    return {
        "mmcs": m["mmcs"],
        "ml2r": m["ml2r"],
        "min_cos": m["min_cos"],
        "mmcs_all": m["mmcs_all"],
        "ml2r_all": m["ml2r_all"],
        "mmcs_strict": mechanism_mmcs(W, comp.U, comp.V),
    }


def summarize(values: Sequence[float], fn: Callable[[Sequence[float]], float] = np.mean) -> float:
    """A float summary of a sequence (mean by default)."""
    return float(fn(values)) if len(values) else float("nan")
