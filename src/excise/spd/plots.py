"""PNG plots of an SPD run (matplotlib, Agg backend): CI matrices, subcomponents vs features, losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from excise.models.toys import ResidMLP, TMSModel  # noqa: E402
from excise.spd.components import SPDModel  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    """Write a figure atomically (temporary name, then rename)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_ci_matrices(
    ci: dict[str, torch.Tensor], path: Path, title: str = "causal importance on one-hot inputs"
) -> Path:
    """Heatmaps of g (features x subcomponents, columns matched to features) for every layer."""
    n = len(ci)
    fig, axes = plt.subplots(1, n, figsize=(max(3.0, 3.4 * n), 3.2), squeeze=False, layout="constrained")
    for ax, (name, g) in zip(axes[0], ci.items(), strict=True):
        arr = g.detach().cpu().numpy()
        k = min(arr.shape[1], max(arr.shape[0] + 5, 10))
        im = ax.imshow(arr[:, :k], vmin=0, vmax=1, cmap="Blues", aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("subcomponent (matched order)")
        ax.set_ylabel("input feature")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_tms_subcomponents(spd: SPDModel, model: TMSModel, path: Path, top: int | None = None) -> Path:
    """Columns of W next to the columns U_c V_cj of the largest subcomponents of linear1."""
    comp = spd.component("linear1")
    W = model.W.detach().cpu().float()
    U, V = comp.U.detach().cpu().float(), comp.V.detach().cpu().float()
    sub = torch.einsum("oc,cj->coj", U, V)  # (C, d_hidden, n_features)
    norms = sub.flatten(1).norm(dim=1)
    k = top or min(comp.C, model.n_features + 1)
    idx = norms.argsort(descending=True)[:k].tolist()
    if model.n_hidden == 2:
        fig, axes = plt.subplots(1, k + 2, figsize=(2.2 * (k + 2), 2.4))
        panels = [("target W", W), ("Σ subcomponents", comp.weight().detach().cpu().float())]
        panels += [(f"c={c} (‖·‖={norms[c]:.2f})", sub[c]) for c in idx]
        lim = float(W.abs().max()) * 1.15 + 1e-6
        cmap = plt.get_cmap("tab10")
        for ax, (name, M) in zip(axes, panels, strict=True):
            for j in range(M.shape[1]):
                ax.arrow(
                    0,
                    0,
                    float(M[0, j]),
                    float(M[1, j]),
                    color=cmap(j % 10),
                    width=lim * 0.01,
                    length_includes_head=True,
                )
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
    else:
        fig, axes = plt.subplots(1, k + 1, figsize=(1.6 * (k + 1), 2.6))
        vmax = float(W.abs().max()) + 1e-6
        panels = [("target W", W)] + [(f"c={c}", sub[c]) for c in idx]
        for ax, (name, M) in zip(axes, panels, strict=True):
            ax.imshow(M.numpy(), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("TMS: columns of W vs learned subcomponents (colour = feature)", fontsize=9)
    return _save(fig, path)


def plot_neuron_contributions(target: torch.Tensor, sub: torch.Tensor, path: Path) -> Path:
    """Scatter of per-(feature, neuron) contributions: target model vs its matched W_in subcomponent."""
    fig, ax = plt.subplots(figsize=(4, 4))
    t, s = target.flatten().numpy(), sub.flatten().numpy()
    ax.scatter(t, s, s=3, alpha=0.4)
    lo, hi = float(min(t.min(), s.min())), float(max(t.max(), s.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
    ax.set_xlabel("neuron contribution (target model)")
    ax.set_ylabel("neuron contribution (subcomponent)")
    ax.set_title("residual MLP: per-feature neuron contributions", fontsize=9)
    return _save(fig, path)


def plot_losses(history: list[dict[str, float]], path: Path) -> Path:
    """Training curves of every loss term (log scale)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    if history:
        steps = [h["step"] for h in history]
        for key in (
            "faithfulness",
            "stochastic_recon",
            "stochastic_recon_layerwise",
            "importance_minimality",
        ):
            vals = [float(h.get(key, 0.0)) for h in history]
            if all(v > 0 for v in vals):
                ax.plot(steps, vals, label=key)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_title("SPD losses", fontsize=9)
    return _save(fig, path)


def save_all(folder: Path, spd: SPDModel, target: Any, train: Any, arrays: dict[str, Any]) -> list[Path]:
    """Every plot that applies to this run, under ``folder/plots``."""
    out = folder / "plots"
    paths = [plot_losses(train.history, out / "losses.png")]
    if "ci_one_hot" in arrays:
        paths.append(plot_ci_matrices(arrays["ci_one_hot"], out / "ci_matrices.png"))
    if isinstance(target.model, TMSModel) and "linear1" in spd.layer_names:
        paths.append(plot_tms_subcomponents(spd, target.model, out / "tms_subcomponents.png"))
    if isinstance(target.model, ResidMLP) and "contributions" in arrays:
        t, s = arrays["contributions"]
        paths.append(plot_neuron_contributions(t, s, out / "neuron_contributions.png"))
    return paths
