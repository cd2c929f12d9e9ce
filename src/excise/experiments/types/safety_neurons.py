"""``safety-neurons``: the set-difference safety study of Wei et al. (2024) as an experiment type.

One run = score safety and utility calibration sets (SNIP or Wanda; the scores come from the
content-addressed cache, so a sweep over (p, q) scores each set once), select the weights in the
top q of safety scores and not in the top p of utility scores, prune them, evaluate
(:func:`excise.pipeline.safety_study`). Metrics: ``asr``, ``benign_accuracy``, ``perplexity``,
``removed`` (fraction) and ``weights_removed_pct``, each baseline row under ``rows.<row>.*``, timings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.config import BaseConfig
from excise.errors import ExciseError
from excise.experiments.registry import (
    ExperimentConfig,
    ReportFigure,
    register_experiment_type,
    scalar_metrics,
)

STUDY_ROWS = ("original", "set_difference", "safety_top_q", "random")


class SafetyEvalOptions(BaseConfig):
    """How each pruned model is evaluated (mirrors :class:`excise.evaluation.SafetyEvalConfig`)."""

    harmful: str = "harmful-eval"
    benign: str = "benign-eval"
    text: str = "text"
    limit: int | None = Field(default=None, ge=1, description="eval size: prompts per eval set (None = all)")
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=64, ge=1)
    system_prompt: str | None = None
    samples: int = Field(default=0, ge=0, description="> 0: also sampled ASR, any-of-n")
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    suffixes: str | None = None


class SafetyNeuronsConfig(ExperimentConfig):
    """Set-difference pruning of safety-critical weights: top-q safety minus top-p utility (Wei et al. 2024)."""

    type: Literal["safety-neurons"] = "safety-neurons"
    model: str = "organism"
    method: Literal["snip", "wanda"] = "snip"
    p: float = Field(default=0.05, gt=0, le=1, description="top fraction of utility scores (protected)")
    q: float = Field(default=0.05, gt=0, le=1, description="top fraction of safety scores (candidates)")
    scope: Literal["row", "matrix", "layer", "global"] = "matrix"
    safety: str = "safety"
    utility: str = "utility"
    n_safety: int | None = Field(default=128, ge=1, description="safety calibration size (None = whole set)")
    n_utility: int | None = Field(
        default=128, ge=1, description="utility calibration size (None = whole set)"
    )
    batch_size: int = Field(default=8, ge=1)
    rows: tuple[Literal["original", "set_difference", "safety_top_q", "random"], ...] = Field(
        default=("set_difference",), min_length=1
    )
    reference: str | None = "auto"
    max_ppl: float = Field(default=50.0, gt=0)
    dtype: str = "float32"
    device: str = "auto"
    eval: SafetyEvalOptions = SafetyEvalOptions()
    seed: int = 0


def _device(name: str) -> str:
    from excise.devices import resolve_device

    return str(resolve_device(name))


def run_safety_neurons(cfg: SafetyNeuronsConfig, ctx: Any) -> dict[str, Any]:
    """Run the safety study for one (p, q) (:func:`excise.pipeline.safety_study`); returns flat metrics."""
    import json

    from excise.data.loading import load_examples
    from excise.evaluation import SafetyEvalConfig
    from excise.models import load_model
    from excise.pipeline import safety_study

    device = _device(cfg.device)
    ctx.logger.info(
        "safety study: model=%s method=%s p=%g q=%g on %s", cfg.model, cfg.method, cfg.p, cfg.q, device
    )
    safety = load_examples(cfg.safety, limit=cfg.n_safety, require_response=True)
    utility = load_examples(cfg.utility, limit=cfg.n_utility, require_response=True)
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=device)
    eval_cfg = SafetyEvalConfig(**cfg.eval.model_dump(), seed=cfg.seed)
    result = safety_study(
        cfg.model,
        p=cfg.p,
        q=cfg.q,
        method=cfg.method,
        safety=safety,
        utility=utility,
        rows=tuple(cfg.rows),
        scope=cfg.scope,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        eval_config=eval_cfg,
        reference=cfg.reference,
        max_ppl=cfg.max_ppl,
        model=model,
        tokenizer=tokenizer,
        log=ctx.logger.info,
    )
    if not isinstance(result, Mapping):
        raise ExciseError(f"safety_study returned {type(result).__name__}; expected a mapping of metrics")
    (ctx.artifacts_dir / "study.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    metrics = scalar_metrics(result)
    if isinstance(metrics.get("removed"), (int, float)):
        metrics["weights_removed_pct"] = 100.0 * float(metrics["removed"])
    return metrics


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
        figs.append(
            ReportFigure(
                path,
                "ASR vs benign accuracy",
                "Each point is one (p, q); good removals of safety raise ASR at high utility.",
            )
        )

    ps = sorted(df["p"].unique())
    qs = sorted(df["q"].unique())
    grid = np.full((len(ps), len(qs)), np.nan)
    for p, q, a in zip(df["p"], df["q"], df[asr], strict=True):
        grid[ps.index(p), qs.index(q)] = a
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(qs), 1.2 + 0.5 * len(ps)))
    im = ax.imshow(
        grid,
        cmap="magma",
        vmin=0,
        vmax=max(1.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1),
        origin="lower",
        aspect="auto",
    )
    ax.set_xticks(range(len(qs)), [f"{q:g}" for q in qs])
    ax.set_yticks(range(len(ps)), [f"{p:g}" for p in ps])
    ax.set_xlabel("q (top safety fraction)")
    ax.set_ylabel("p (top utility fraction)")
    for i in range(len(ps)):
        for j in range(len(qs)):
            if not math.isnan(grid[i, j]):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if grid[i, j] < 0.5 else "black",
                )
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
