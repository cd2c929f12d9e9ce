"""``safety-neurons``: the set-difference safety study of Wei et al. (2024) as an experiment type.

One run = score safety and utility calibration sets (SNIP or Wanda; the scores come from the
content-addressed cache, so a sweep over (p, q) scores each set once), select the weights in the
top q of safety scores and not in the top p of utility scores, prune them, evaluate
(:func:`excise.pipeline.safety_study`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.errors import ExciseError
from excise.experiments.registry import ExperimentConfig, ReportFigure, register_experiment_type


class SafetyNeuronsConfig(ExperimentConfig):
    """Set-difference pruning of safety-critical weights: top-q safety minus top-p utility."""

    type: Literal["safety-neurons"] = "safety-neurons"
    model: str = "organism"
    method: Literal["snip", "wanda"] = "snip"
    p: float = Field(default=0.05, ge=0, le=1, description="top fraction of utility scores kept (protected)")
    q: float = Field(default=0.05, ge=0, le=1, description="top fraction of safety scores considered")
    n_safety: int = Field(default=128, ge=1, description="safety calibration samples")
    n_utility: int = Field(default=128, ge=1, description="utility calibration samples")
    n_harmful_eval: int = Field(default=100, ge=1, description="held-out harmful prompts for ASR")
    n_benign_eval: int = Field(default=100, ge=1, description="held-out benign prompts for accuracy")
    n_text_eval: int = Field(default=50, ge=0, description="text samples for perplexity (0 = skip)")
    dtype: str = "float32"
    device: str = "auto"
    seed: int = 0


def _call_with_config(fn: Any, cfg: SafetyNeuronsConfig, extra: Mapping[str, Any]) -> Any:
    """Call ``fn`` with the config fields (and ``extra``) its signature accepts."""
    params = inspect.signature(fn).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    data = {k: v for k, v in cfg.model_dump().items() if k != "type"} | dict(extra)
    kwargs = {k: v for k, v in data.items() if takes_kwargs or k in params}
    return fn(**kwargs)


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None or hasattr(v, "item"):
            out[key] = v
    return out


def run_safety_neurons(cfg: SafetyNeuronsConfig, ctx: Any) -> dict[str, Any]:
    """Run the safety study for one (p, q); returns its metrics (asr, benign_accuracy, ...)."""
    try:
        from excise.pipeline import safety_study
    except ImportError as err:
        raise ExciseError(f"the safety-neurons experiment needs excise.pipeline.safety_study ({err})") from None
    ctx.logger.info("safety study: model=%s method=%s p=%g q=%g", cfg.model, cfg.method, cfg.p, cfg.q)
    result = _call_with_config(safety_study, cfg, {"out_dir": ctx.artifacts_dir, "progress": True})
    if hasattr(result, "model_dump"):
        result = result.model_dump()
    elif hasattr(result, "__dataclass_fields__"):
        from dataclasses import asdict

        result = asdict(result)
    if not isinstance(result, Mapping):
        raise ExciseError(f"safety_study returned {type(result).__name__}; expected a mapping of metrics")
    return _flatten(result)


# ---------------------------------------------------------------- plots


def _pick(table: Any, *names: str) -> str | None:
    for n in names:
        if n in table.columns and table[n].notna().any():
            return n
    return None


def plot_safety_neurons(table: Any, out_dir: Path) -> list[ReportFigure]:
    """ASR vs benign accuracy over (p, q), a heat map of ASR over the grid, weights removed vs ASR."""
    import matplotlib.pyplot as plt
    import numpy as np

    figs: list[ReportFigure] = []
    asr = _pick(table, "asr", "asr_after", "attack_success_rate")
    util = _pick(table, "benign_accuracy", "utility", "benign_accuracy_after", "accuracy")
    removed = _pick(table, "weights_removed_pct", "sparsity_pct", "weights_removed")
    if asr is None:
        return figs
    df = table.sort_values(["p", "q"])
    labels = [f"({p:g}, {q:g})" for p, q in zip(df["p"], df["q"], strict=True)]

    if util is not None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        sc = ax.scatter(df[util], df[asr], c=np.log10(df["q"].clip(lower=1e-6)), cmap="plasma", s=50)
        for x, y, lab in zip(df[util], df[asr], labels, strict=True):
            ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        fig.colorbar(sc, ax=ax, label="log10 q")
        ax.set_xlabel(util.replace("_", " "))
        ax.set_ylabel("attack success rate")
        ax.set_title("ASR vs utility across (p, q)")
        ax.grid(alpha=0.3)
        path = out_dir / "safety_asr_vs_utility.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(ReportFigure(path, "ASR vs benign accuracy",
                                 "Each point is one (p, q); good removals of safety raise ASR at high utility."))

    ps = sorted(df["p"].unique())
    qs = sorted(df["q"].unique())
    grid = np.full((len(ps), len(qs)), np.nan)
    for p, q, a in zip(df["p"], df["q"], df[asr], strict=True):
        grid[ps.index(p), qs.index(q)] = a
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(qs), 1.2 + 0.5 * len(ps)))
    im = ax.imshow(grid, cmap="magma", vmin=0, vmax=max(1.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1),
                   origin="lower", aspect="auto")
    ax.set_xticks(range(len(qs)), [f"{q:g}" for q in qs])
    ax.set_yticks(range(len(ps)), [f"{p:g}" for p in ps])
    ax.set_xlabel("q (top safety fraction)")
    ax.set_ylabel("p (top utility fraction)")
    for i in range(len(ps)):
        for j in range(len(qs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.5 else "black")
    fig.colorbar(im, ax=ax, label="ASR")
    ax.set_title("ASR over the (p, q) grid")
    path = out_dir / "safety_asr_heatmap.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    figs.append(ReportFigure(path, "ASR heat map over (p, q)", "Blank cells were not run."))

    if removed is not None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter(df[removed], df[asr], s=40)
        for x, y, lab in zip(df[removed], df[asr], labels, strict=True):
            ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if (df[removed] > 0).all():
            ax.set_xscale("log")
        ax.set_xlabel(removed.replace("_", " "))
        ax.set_ylabel("attack success rate")
        ax.set_title("Weights removed vs ASR")
        ax.grid(alpha=0.3)
        path = out_dir / "safety_removed_vs_asr.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figs.append(ReportFigure(path, "Weights removed vs ASR", "How few weights break safety alignment."))
    return figs


register_experiment_type("safety-neurons", SafetyNeuronsConfig, run_safety_neurons, plot_safety_neurons)
