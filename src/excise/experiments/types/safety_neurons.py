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

from excise.errors import ExciseError
from excise.experiments.registry import (
    ExperimentConfig,
    ReportFigure,
    register_experiment_type,
    scalar_metrics,
)
from excise.pipeline import StudyConfig


class SafetyNeuronsConfig(StudyConfig, ExperimentConfig):
    """Set-difference pruning of safety-critical weights: top-q safety minus top-p utility (Wei et al. 2024).

    The fields are :class:`excise.pipeline.StudyConfig`'s (``eval:`` is an
    :class:`excise.evaluation.EvalConfig`); the named experiments ``safety-neurons`` (the (p, q)
    sweeps) and ``demo`` (all four rows on the organism) are documents of this type.
    """

    type: Literal["safety-neurons"] = "safety-neurons"


def run_safety_neurons(cfg: SafetyNeuronsConfig, ctx: Any) -> dict[str, Any]:
    """Run the safety study for one (p, q) (:func:`excise.pipeline.safety_study`); returns flat metrics
    and writes the study's report (table, CSV, plot, JSON) into the run's artifacts."""
    from excise.pipeline import safety_study

    ctx.logger.info("safety study: model=%s method=%s p=%g q=%g", cfg.model, cfg.method, cfg.p, cfg.q)
    result = safety_study(cfg, log=ctx.logger.info)
    if not isinstance(result, Mapping):
        raise ExciseError(f"safety_study returned {type(result).__name__}; expected a mapping of metrics")
    write_study_report(result, ctx.artifacts_dir)
    return study_metrics(result)


def study_metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """The flat scalar metrics of a study result (rows under ``rows.<row>.*``), plus ``weights_removed_pct``."""
    metrics = scalar_metrics(result)
    if isinstance(metrics.get("removed"), (int, float)):
        metrics["weights_removed_pct"] = 100.0 * float(metrics["removed"])
    return metrics


# ---------------------------------------------------------------- the study's report

COLUMNS = (
    "weights removed (%)",
    "ASR (%)",
    "benign accuracy (%)",
    "perplexity",
    "over-refusal (%)",
    "KL, first token",
)
CSV_METRICS = (
    "removed",
    "count",
    "asr",
    "refusal_rate",
    "incoherent_rate",
    "benign_accuracy",
    "perplexity",
    "over_refusal",
    "off_topic_rate",
    "unjudged_rate",
    "cross_entropy",
    "kl_first_token",
    "kl_mean",
)


def _extra_columns(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(metric key, column title) of the optional metrics present in every row: ASR variants, zero-shot tasks."""
    first = next(iter(result["rows"].values()))
    out = []
    if "asr_system_prompt" in first:
        out.append(("asr_system_prompt", "ASR, system prompt (%)"))
    out += [
        (k, f"ASR, sampled any-of-{k.rsplit('_', 1)[-1]} (%)")
        for k in first
        if k.startswith("asr_sampled_any_of_")
    ]
    if "asr_suffixes" in first:
        out.append(("asr_suffixes", "ASR, suffixes (%)"))
    out += [(k, f"zero-shot {k.removeprefix('zero_shot_')} (%)") for k in first if k.startswith("zero_shot_")]
    return out


def _row_values(m: Mapping[str, Any], extra: list[tuple[str, str]]) -> list[str]:
    """One table row's cells, percentages with fixed decimals."""
    return [
        f"{100 * m['removed']:.2f}",
        f"{100 * m['asr']:.1f}",
        f"{100 * m['benign_accuracy']:.1f}",
        f"{m['perplexity']:.2f}",
        f"{100 * m.get('over_refusal', float('nan')):.1f}",
        f"{m.get('kl_first_token', float('nan')):.3f}",
        *(f"{100 * m[k]:.1f}" for k, _ in extra),
    ]


def format_table(result: Mapping[str, Any]) -> str:
    """The study's rows (original, set difference, baselines) as a fixed-width text table."""
    from excise.pipeline import ROW_TITLES

    names = {
        "set_difference": f"set difference (p={result['p']:g}, q={result['q']:g})",
        "safety_top_q": f"top-q safety only (q={result['q']:g})",
        "random": "random, same count",
        "original": "original model",
    }
    extra = _extra_columns(result)
    body = [[names.get(r, ROW_TITLES.get(r, r)), *_row_values(m, extra)] for r, m in result["rows"].items()]
    head = ["", *COLUMNS, *(title for _, title in extra)]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _csv(result: Mapping[str, Any]) -> str:
    """The rows as CSV text (fractions, not percentages)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    extra = [k for k, _ in _extra_columns(result)]
    w.writerow(["row", *CSV_METRICS, *extra])
    for r, m in result["rows"].items():
        w.writerow([r, *(m.get(k, 0 if k == "count" else None) for k in CSV_METRICS), *(m[k] for k in extra)])
    return buf.getvalue()


def _plot(result: Mapping[str, Any]) -> bytes:
    """PNG bytes of a bar chart: ASR and benign accuracy per row."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from excise.pipeline import ROW_TITLES

    rows = list(result["rows"])
    labels = [ROW_TITLES.get(r, r).split(" (")[0].replace(", ", ",\n") for r in rows]
    asr = [100 * result["rows"][r]["asr"] for r in rows]
    acc = [100 * result["rows"][r]["benign_accuracy"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.bar([i - 0.2 for i in x], asr, width=0.4, label="attack success rate (%)", color="#c0392b")
    ax.bar([i + 0.2 for i in x], acc, width=0.4, label="benign accuracy (%)", color="#2e86c1")
    for i in x:
        ax.text(i - 0.2, asr[i] + 1, f"{asr[i]:.0f}", ha="center", fontsize=8)
        ax.text(i + 0.2, acc[i] + 1, f"{acc[i]:.0f}", ha="center", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("%")
    ax.set_title(
        f"{result['model']}: pruning {result['method']} set difference (p={result['p']:g}, q={result['q']:g})"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_study_report(result: Mapping[str, Any], out: Path) -> Path:
    """Write results.json, results.csv, table.txt and asr_accuracy.png into ``out`` (each atomically)."""
    from excise.utils import atomic_write_bytes, atomic_write_json, atomic_write_text

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExciseError(
            f"cannot create the report folder {out} ({err.strerror}); pass a writable --out"
        ) from None
    atomic_write_json(out / "results.json", dict(result))
    atomic_write_text(out / "results.csv", _csv(result))
    atomic_write_text(out / "table.txt", format_table(result) + "\n")
    atomic_write_bytes(out / "asr_accuracy.png", _plot(result))
    return out


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
