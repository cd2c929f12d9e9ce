"""``safety-ranks``: safety-critical ranks by ActSVD (Wei et al. 2024) as an experiment type.

One run = score the safety and the utility calibration sets with ``actsvd`` (through
:func:`excise.scoring.score`, so a sweep scores each set once), remove ranks from every scored matrix
reversibly (:func:`excise.interventions.lowrank.ablate_ranks`), evaluate
(:func:`excise.evaluation.evaluate_safety`, KL from the unedited model), restore the weights.

Modes: ``orthogonal`` (r_u, r_s): dW = (I - Pi_u) Pi_s W, the safety directions outside the top
utility subspace, rank(dW) <= min(r_u, R - r_s); ``remove-top`` k: dW = U_k U_k^T W, the top k safety
directions without the projection (the paper's baseline). ``random``: the same rank(dW) per matrix
as the edit the other settings describe, in random directions (seeded;
:func:`excise.interventions.lowrank.ablate_random_ranks`).

Metrics: ``asr``, ``refusal_rate``, ``benign_accuracy``, ``perplexity``, ``over_refusal``,
``kl_first_token`` / ``kl_mean`` (and every other scalar of the evaluation), ``rank_dw`` (sum over
matrices of rank(dW)), ``total_R`` (sum of R = min(d_out, d_in)), ``rank_dw_fraction`` = rank_dw /
total_R, ``rank_bound``, ``rank_dw_max`` (largest per matrix), ``matrices``; with ``random``,
``matched_rank_dw``; with ``include_original``, the unedited model's metrics as ``original.*``.
Artifacts: ``results.json`` (with example answers) and ``rank_report.json`` (rank(dW) per matrix).

:class:`RankStudyConfig` (model, judge, reference, evaluation) and the helpers below are shared with
the ``refusal-direction`` type.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from excise.evaluation.config import EvalConfig
from excise.experiments.registry import (
    ExperimentConfig,
    ReportFigure,
    register_experiment_type,
    scalar_metrics,
)

#: The evaluation's scalars every run reports first (the others follow as evaluate_safety names them).
EVAL_METRICS = (
    "asr",
    "refusal_rate",
    "benign_accuracy",
    "perplexity",
    "over_refusal",
    "kl_first_token",
    "kl_mean",
)


class RankStudyConfig(ExperimentConfig):
    """What the rank-level studies share: the model, the judge and its reference, the evaluation."""

    type: str
    model: str = Field(default="organism", description="built-in model name or model folder")
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int = Field(default=8, ge=1, description="scoring batch size")
    judge: Literal["default", "keyword"] = Field(
        default="default",
        description="'default': excise.evaluation.default_judge (semantic); 'keyword': refusal phrases",
    )
    reference: str | None = Field(
        default="auto", description="coherence reference model ('auto': the model's base, None: none)"
    )
    max_ppl: float = Field(default=50.0, gt=0, description="perplexity gate under the organism's base")
    include_original: bool = Field(
        default=False, description="also evaluate the unedited model (metrics under original.*)"
    )
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    use_cache: bool = Field(default=True, description="reuse cached scores (content-addressed)")
    threads: int | Literal["auto"] | None = Field(
        default="auto", description="torch threads ('auto': excise.threads; None: unchanged)"
    )

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ValueError(f"threads must be a positive number, 'auto' or None, got {v!r}")
        return v


def _check_count(name: str, v: Any) -> int | float:
    """An int count (>= 0) or a float fraction of R in [0, 1]; the bound by R is checked per matrix."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{name} must be a count (int) or a fraction of R (float in [0, 1]), got {v!r}")
    if isinstance(v, float) and (not math.isfinite(v) or not 0.0 <= v <= 1.0):
        raise ValueError(f"{name} = {v} as a fraction of R must lie in [0, 1] (or give an int count)")
    if isinstance(v, int) and v < 0:
        raise ValueError(f"{name} must be at least 0, got {v}")
    return v


class SafetyRanksConfig(RankStudyConfig):
    """Safety-critical ranks by ActSVD (Wei et al. 2024): remove them, measure ASR and utility.

    ``mode: orthogonal`` removes the top ``R - r_s`` safety directions projected off the top
    ``R - r_u`` utility directions; ``remove-top`` the top ``k`` safety directions. Counts are ints
    (directions) or floats in [0, 1] (fractions of each matrix's R). ``random: true`` removes random
    directions of the same rank per matrix.
    """

    type: Literal["safety-ranks"] = "safety-ranks"
    safety: str = Field(default="safety", description="safety calibration set (name or file)")
    utility: str = Field(default="utility", description="utility calibration set (name or file)")
    n_safety: int | None = Field(default=128, ge=1, description="safety calibration size (None = all)")
    n_utility: int | None = Field(default=128, ge=1, description="utility calibration size (None = all)")
    actsvd_mode: Literal["one-pass", "sequential"] = Field(
        default="one-pass", description="actsvd's mode: every Gram in one pass, or block by block"
    )
    gram_dtype: Literal["float64", "float32"] = Field(default="float64", description="X^T X accumulation")
    targets: tuple[str, ...] | None = Field(
        default=None, description="glob patterns of the matrices to edit (None: every Linear but the head)"
    )
    mode: Literal["orthogonal", "remove-top"] = "orthogonal"
    r_u: int | float = Field(default=0.875, description="orthogonal: utility directions left unprotected")
    r_s: int | float = Field(default=0.94, description="orthogonal: safety directions kept (R - r_s go)")
    k: int | float = Field(default=0.0625, description="remove-top: safety directions removed")
    random: bool = Field(default=False, description="random directions of the same rank(dW) per matrix")

    @field_validator("r_u", "r_s", "k", mode="before")
    @classmethod
    def _counts(cls, v: Any, info: Any) -> int | float:
        return _check_count(str(info.field_name), v)


# ---------------------------------------------------------------- shared helpers


@contextlib.contextmanager
def study_threads(cfg: RankStudyConfig) -> Iterator[None]:
    """The study's torch threads (``threads: auto`` follows :mod:`excise.threads`)."""
    from excise.threads import auto_threads, use_threads

    n = auto_threads() if cfg.threads == "auto" else cfg.threads
    with use_threads(n):  # type: ignore[arg-type]
        yield


def load_study_model(cfg: RankStudyConfig) -> tuple[Any, Any]:
    """The model under study, on the configured device and dtype, in eval mode."""
    from excise.devices import resolve_device
    from excise.models import load_model

    model, tok = load_model(cfg.model, dtype=cfg.dtype, device=str(resolve_device(cfg.device)))
    return model.eval(), tok


def study_judge(cfg: RankStudyConfig) -> Any:
    """The judge as the safety study builds it: the default judge with the model's base as coherence
    reference (fixed threshold for the organism's base, calibrated otherwise), or the keyword judge."""
    from excise.models import load_model
    from excise.pipeline import make_judge, reference_for

    ref_name = reference_for(cfg.model) if cfg.reference == "auto" else cfg.reference
    ref = load_model(ref_name) if ref_name else None
    fixed = cfg.max_ppl if ref_name == "organism-base" else None
    if cfg.judge == "keyword":
        from excise.evaluation import KeywordJudge, ReferencePerplexity

        if ref is None:
            return KeywordJudge()
        gate = ReferencePerplexity(ref[0], ref[1], max_ppl=fixed or 1.0)
        if fixed is None:
            from excise.evaluation.semantic import calibrate_reference

            gate.max_ppl = calibrate_reference(gate)["max_ppl"]
        return KeywordJudge(reference=gate)
    return make_judge(ref, max_ppl=fixed)


def evaluate(model: Any, tok: Any, ev: EvalConfig, judge: Any, kl_ref: Any) -> dict[str, Any]:
    """``evaluate_safety`` with three example answers per set."""
    from excise.evaluation import evaluate_safety

    return evaluate_safety(model, tok, ev, judge=judge, kl_reference=kl_ref, keep_examples=3)


def eval_scalars(res: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation's flat scalars (EVAL_METRICS first; per-category / per-task dicts flattened),
    without the example answers and the timing."""
    body = {k: v for k, v in res.items() if k not in ("examples", "seconds")}
    flat = scalar_metrics(body)
    first = {k: flat.pop(k) for k in EVAL_METRICS if k in flat}
    return {**first, **flat}


def finish_result(
    out: dict[str, Any],
    original: Mapping[str, Any] | None,
    edited: Mapping[str, Any],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The common tail of a rank-level result: ``with_original``, rounded timings, both examples."""
    with_original(out, original, edited)
    out["timings"] = {k: round(v, 2) for k, v in timings.items()}
    out["examples"] = {
        "edited": edited.get("examples", {}),
        **({"original": original.get("examples", {})} if original else {}),
    }
    return out


def with_original(
    out: dict[str, Any], original: Mapping[str, Any] | None, edited: Mapping[str, Any]
) -> dict[str, Any]:
    """Add the unedited model's scalars as ``original.*`` and the ASR gain / accuracy drop."""
    if original is None:
        return out
    for k, v in eval_scalars(original).items():
        out[f"original.{k}"] = v
    if isinstance(original.get("asr"), float) and isinstance(edited.get("asr"), float):
        out["asr_gain"] = edited["asr"] - original["asr"]
    if isinstance(original.get("benign_accuracy"), float):
        out["accuracy_drop"] = original["benign_accuracy"] - edited["benign_accuracy"]
    return out


def write_results(out_dir: Path, name: str, obj: Any) -> None:
    """One JSON artifact, atomically."""
    from excise.utils import atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / name, obj)


# ---------------------------------------------------------------- the study


def _count_settings(cfg: SafetyRanksConfig) -> dict[str, int | float]:
    return {"r_u": cfg.r_u, "r_s": cfg.r_s} if cfg.mode == "orthogonal" else {"k": cfg.k}


def check_counts(model: Any, cfg: SafetyRanksConfig) -> dict[str, int]:
    """R of every targeted matrix; each count checked against it (an ExciseError before any forward)."""
    from excise.interventions.lowrank import rank_count
    from excise.scoring import target_modules
    from excise.scoring.base import weight_key, weight_of

    mods = target_modules(model, list(cfg.targets) if cfg.targets else None)
    Rs = {weight_key(name): min(weight_of(mod).shape) for name, mod in mods.items()}
    for key, R in Rs.items():
        for what, v in _count_settings(cfg).items():
            rank_count(v, R, what, key)
    return Rs


def safety_ranks_study(
    cfg: SafetyRanksConfig,
    *,
    model: Any | None = None,
    tokenizer: Any | None = None,
    judge: Any | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One rank removal, evaluated: the flat metrics (see the module docstring) plus ``rank_report``
    (per matrix) and ``examples`` (answers of the edited and, if evaluated, the original model)."""
    from excise.data.loading import load_examples
    from excise.evaluation import build_kl_reference
    from excise.interventions.lowrank import ablate_random_ranks, ablate_ranks
    from excise.scoring import score

    say = log or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = load_study_model(cfg)
    model.eval()
    timings["load"] = time.perf_counter() - t0
    # every input is checked before the first forward pass
    safety = load_examples(cfg.safety, limit=cfg.n_safety, require_response=True)
    utility = (
        load_examples(cfg.utility, limit=cfg.n_utility, require_response=True)
        if cfg.mode == "orthogonal"
        else None
    )
    Rs = check_counts(model, cfg)
    if judge is None:
        judge = study_judge(cfg)
    ev = cfg.eval.model_copy(update={"seed": cfg.seed})

    t = time.perf_counter()
    say(f"scoring (actsvd, {cfg.actsvd_mode}) on the safety{' and utility' if utility else ''} set ...")
    settings: dict[str, Any] = {
        "mode": cfg.actsvd_mode,
        "gram_dtype": cfg.gram_dtype,
        "targets": list(cfg.targets) if cfg.targets else None,
        "batch_size": cfg.batch_size,
        "use_cache": cfg.use_cache,
    }
    s_scores = score(model, tokenizer, safety, "actsvd", **settings)
    u_scores = score(model, tokenizer, utility, "actsvd", **settings) if utility is not None else None
    timings["score"] = time.perf_counter() - t

    t = time.perf_counter()
    kl_ref = build_kl_reference(model, tokenizer, ev)  # the unedited model's answers
    original = None
    if cfg.include_original:
        say("evaluating the unedited model ...")
        original = evaluate(model, tokenizer, ev, judge, kl_ref)
    kw: dict[str, Any] = {"mode": cfg.mode, **_count_settings(cfg)}
    matched = None
    if cfg.random:
        with ablate_ranks(model, s_scores, u_scores, **kw) as matched:  # only its rank(dW) per matrix
            pass
        edit = ablate_random_ranks(model, matched.ranks, seed=cfg.seed)
    else:
        edit = ablate_ranks(model, s_scores, u_scores, **kw)
    with edit as report:
        say(f"evaluating: {report.summary()}{' (random directions)' if cfg.random else ''} ...")
        edited = evaluate(model, tokenizer, ev, judge, kl_ref)
    timings["evaluate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    total_R = sum(Rs.values())
    out: dict[str, Any] = eval_scalars(edited)
    out.update(
        rank_dw=report.total,
        total_R=total_R,
        rank_dw_fraction=report.total / total_R if total_R else 0.0,
        rank_bound=sum(report.bounds.values()),
        rank_dw_max=max(report.ranks.values(), default=0),
        matrices=len(report.ranks),
    )
    for what in ("r_u", "r_s", "k"):
        if any(what in c for c in report.counts.values()):
            out[f"counts.{what}"] = sum(c.get(what, 0) for c in report.counts.values())
    if matched is not None:
        out["matched_rank_dw"] = matched.total
    out["rank_report"] = {**report.to_dict(), "matched": matched.to_dict() if matched else None}
    return finish_result(out, original, edited, timings)


def run_safety_ranks(cfg: SafetyRanksConfig, ctx: Any) -> dict[str, Any]:
    """Score, remove ranks reversibly, evaluate; writes results.json and rank_report.json, returns flat metrics."""
    ctx.logger.info(
        "safety ranks: model=%s mode=%s %s%s",
        cfg.model,
        cfg.mode,
        ", ".join(f"{k}={v:g}" for k, v in _count_settings(cfg).items()),
        " (random)" if cfg.random else "",
    )
    with study_threads(cfg):
        result = safety_ranks_study(cfg, log=ctx.logger.info)
    write_results(ctx.artifacts_dir, "rank_report.json", result["rank_report"])
    write_results(ctx.artifacts_dir, "results.json", result)
    flat = {k: v for k, v in result.items() if k not in ("rank_report", "examples")}
    return scalar_metrics(flat)


# ---------------------------------------------------------------- plots


def _done(table: Any) -> Any:
    return table[table["state"] == "done"] if "state" in table.columns else table


def _series(df: Any) -> list[tuple[str, Any]]:
    """(label, rows) per line: each mode, random separately; orthogonal split by r_u when it varies."""
    out = []
    rnd = df["random"].fillna(False).astype(bool) if "random" in df.columns else None
    for mode in sorted(df["mode"].dropna().unique()) if "mode" in df.columns else ["orthogonal"]:
        for is_random in (False, True):
            part = df[df["mode"] == mode] if "mode" in df.columns else df
            if rnd is not None:
                part = part[rnd.loc[part.index] == is_random]
            if not len(part):
                continue
            name = f"{mode}{', random' if is_random else ''}"
            if mode == "orthogonal" and "r_u" in part.columns and part["r_u"].nunique() > 1:
                for r_u in sorted(part["r_u"].unique(), key=float):
                    out.append((f"{name} (r_u={float(r_u):g})", part[part["r_u"] == r_u]))
            else:
                out.append((name, part))
    return out


def _rank_figure(df: Any, panels: list[tuple[str, str]], path: Path, title: str) -> Path | None:
    """Metrics against rank(dW) / total R (%), one panel per metric, one line per series."""
    import matplotlib.pyplot as plt

    panels = [(c, lab) for c, lab in panels if c in df.columns and df[c].notna().any()]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    styles = {False: "-o", True: ":s"}
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        for name, part in _series(df):
            d = part.dropna(subset=[col, "rank_dw_fraction"]).sort_values("rank_dw_fraction")
            if len(d):
                ax.plot(100 * d["rank_dw_fraction"], d[col], styles["random" in name], label=name, ms=4)
        orig = f"original.{col}"
        if orig in df.columns and df[orig].notna().any():
            ax.axhline(float(df[orig].dropna().iloc[0]), color="grey", lw=0.8, ls="-.", label="unedited")
        xs = sorted({round(100 * float(x), 3) for x in df["rank_dw_fraction"].dropna()})
        if xs and xs[0] > 0:  # the ranks of a sweep double from point to point
            from matplotlib.ticker import NullLocator

            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
            ticks = xs if len(xs) <= 8 else xs[:: math.ceil(len(xs) / 8)]
            ax.set_xticks(ticks, [f"{x:.3g}" for x in ticks])
        if col.startswith("kl_") and (df[col].dropna() > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("rank(dW) / total R (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_safety_ranks(table: Any, out_dir: Path) -> list[ReportFigure]:
    """ASR and benign accuracy against rank(dW); KL and over-refusal against rank(dW) (a line per mode)."""
    df = _done(table)
    figs: list[ReportFigure] = []
    if "rank_dw_fraction" not in df.columns or not len(df):
        return figs
    p = _rank_figure(
        df,
        [("asr", "attack success rate"), ("benign_accuracy", "benign accuracy")],
        out_dir / "safety_ranks_asr_accuracy.png",
        "ASR and benign accuracy against the rank removed",
    )
    if p:
        figs.append(
            ReportFigure(
                p,
                "ASR and benign accuracy against rank(dW)",
                "rank(dW) summed over matrices, as a share of the summed R = min(d_out, d_in); "
                "dotted: random directions of the same rank per matrix.",
            )
        )
    p = _rank_figure(
        df,
        [("kl_first_token", "KL from the unedited model, first token"), ("over_refusal", "over-refusal")],
        out_dir / "safety_ranks_kl_over_refusal.png",
        "KL and over-refusal against the rank removed",
    )
    if p:
        figs.append(
            ReportFigure(
                p,
                "KL and over-refusal against rank(dW)",
                "Next-token KL on harmless prompts and the share of benign prompts refused.",
            )
        )
    return figs


register_experiment_type("safety-ranks", SafetyRanksConfig, run_safety_ranks, plot_safety_ranks)
