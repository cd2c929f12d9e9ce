"""The safety study of Wei et al. 2024 as one function: score -> set difference -> prune -> evaluate.

``safety_study`` scores the model on the safety and utility calibration sets, selects the weights
in the top q of the safety scores and not in the top p of the utility scores (per matrix), and
measures ASR, benign accuracy and perplexity with those weights removed. Baseline rows (the
original model, top-q safety pruning without the set difference, and the same number of
weights chosen at random) are optional; the sweep engine calls it once per (p, q).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from excise.config import BaseConfig
from excise.errors import ExciseError
from excise.evaluation.config import EvalConfig

DEFAULT_P = 0.05
DEFAULT_Q = 0.08
ROWS = ("original", "set_difference", "safety_top_q", "random")
ROW_TITLES = {
    "original": "original model",
    "set_difference": "set difference (top q safety minus top p utility)",
    "safety_top_q": "top-q safety, no set difference",
    "random": "random, same count as set difference",
}
METRICS = ("removed", "asr", "benign_accuracy", "perplexity")


def reference_for(model_name: str) -> str | None:
    """The base (helpful-only) model whose perplexity gates coherence, where one exists."""
    if model_name == "organism":
        return "organism-base"
    if model_name == "smollm2-safety":
        return "smollm2-135m-instruct"
    return None


def make_judge(reference: Any | None = None, max_ppl: float | None = 50.0) -> Any:
    """The default judge (``excise.evaluation.default_judge``): the semantic refusal classifier with
    the keyword flags, text heuristics, and perplexity under ``reference`` (model, tok) when given;
    ``max_ppl=None`` calibrates the threshold on the project's coherent / incoherent examples."""
    from excise.evaluation import default_judge

    return default_judge(reference=reference, max_ppl=max_ppl)


def _check_rows(rows: Sequence[str]) -> tuple[str, ...]:
    """The rows without duplicates, or an ExciseError naming the known ones."""
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        raise ExciseError(f"unknown study row(s) {bad or '(none given)'}; choose from {', '.join(ROWS)}")
    return tuple(dict.fromkeys(rows))


class StudyConfig(BaseConfig):
    """One safety study: which model, how it is scored and selected, which rows, how it is evaluated.

    The experiment type ``safety-neurons`` extends it (its YAML ``experiment:`` block is this
    config plus ``type``), the demo is the named experiment ``demo`` of that type, and
    :func:`safety_study` takes it whole.
    """

    model: str = Field(default="organism", description="built-in model name or model folder")
    method: str = Field(default="snip", description="a scoring method of unit 'weight' (snip, wanda, ...)")
    p: float = Field(default=DEFAULT_P, description="top fraction of utility scores (protected)")
    q: float = Field(default=DEFAULT_Q, description="top fraction of safety scores (candidates)")
    scope: Literal["row", "matrix", "layer", "global"] = "matrix"
    safety: str = Field(default="safety", description="safety calibration set (name or file)")
    utility: str = Field(default="utility", description="utility calibration set (name or file)")
    n_safety: int | None = Field(default=None, ge=1, description="safety calibration size (None = whole set)")
    n_utility: int | None = Field(
        default=None, ge=1, description="utility calibration size (None = whole set)"
    )
    batch_size: int = Field(default=8, ge=1, description="scoring batch size")
    rows: tuple[str, ...] = Field(default=("set_difference",), description=f"any of {', '.join(ROWS)}")
    reference: str | None = Field(
        default="auto", description="coherence reference model ('auto': the model's base, None: none)"
    )
    max_ppl: float = Field(default=50.0, gt=0, description="perplexity gate under the organism's base")
    dtype: str = "float32"
    device: str = "auto"
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    use_cache: bool = True
    threads: int | Literal["auto"] | None = Field(
        default="auto", description="torch threads for the study ('auto': excise.threads; None: unchanged)"
    )

    @field_validator("p", "q")
    @classmethod
    def _fraction(cls, v: float, info: ValidationInfo) -> float:
        from excise.selection import check_fraction

        return check_fraction(str(info.field_name), v)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        from excise.core import require_unit
        from excise.scoring import get_method

        try:
            require_unit(get_method(v), "weight", f"the safety study (method '{v}')")
        except ExciseError as err:  # pydantic names the key 'method' in the message
            raise ValueError(str(err)) from None
        return v

    @field_validator("rows", mode="before")
    @classmethod
    def _rows(cls, v: Any) -> tuple[str, ...]:
        return _check_rows([v] if isinstance(v, str) else list(v))

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            raise ExciseError(f"threads must be a positive number, 'auto' or None, got {v!r}")
        return v


def study_config(config: StudyConfig | Mapping[str, Any] | None = None, **changes: Any) -> StudyConfig:
    """``config`` (or the defaults) with ``changes`` applied and validated; bad values are an ExciseError."""
    from excise.config import validate

    base = config.model_dump() if isinstance(config, StudyConfig) else dict(config or {})
    return validate(StudyConfig, {**base, **changes}, "study config")


def safety_study(
    config: StudyConfig | Mapping[str, Any] | None = None,
    *,
    model: Any | None = None,
    tokenizer: Any | None = None,
    judge: Any | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Metrics of the set-difference pruning at (p, q), plus the requested baseline ``rows``.

    ``config`` is a :class:`StudyConfig` (or a mapping of its fields). ``model`` / ``tokenizer``
    reuse a loaded model instead of loading ``config.model``; ``judge`` replaces the default judge
    (semantic classifier + keywords + coherence under the model's reference). Returns a flat dict
    for sweeps (``removed``, ``asr``, ``benign_accuracy``, ``perplexity`` of the set-difference row
    when it is among the rows) with every row's metrics under ``rows``.
    """
    from excise.threads import auto_threads, use_threads

    cfg = config if isinstance(config, StudyConfig) else study_config(config)
    threads = auto_threads() if cfg.threads == "auto" else cfg.threads
    with use_threads(threads):  # type: ignore[arg-type]
        return _study(cfg, model, tokenizer, judge, log)


def _study(
    cfg: StudyConfig,
    model: Any | None,
    tokenizer: Any | None,
    judge: Any | None,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The body of ``safety_study`` (the config already validated)."""
    from excise import selection
    from excise.data.loading import load_examples
    from excise.evaluation import build_kl_reference, evaluate_safety
    from excise.interventions import ablate
    from excise.models import load_model
    from excise.scoring import score

    say = log or (lambda _msg: None)
    rows = cfg.rows
    ev = cfg.eval.model_copy(update={"seed": cfg.seed})
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is None or tokenizer is None:
        from excise.devices import resolve_device

        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=str(resolve_device(cfg.device)))
    model.eval()
    timings["load"] = time.perf_counter() - t0

    if judge is None:
        ref_name = reference_for(cfg.model) if cfg.reference == "auto" else cfg.reference
        ref = load_model(ref_name) if ref_name else None
        # the organism's base model has a fixed threshold; a real reference is calibrated (None)
        judge = make_judge(ref, max_ppl=cfg.max_ppl if ref_name == "organism-base" else None)

    needs_scores = any(r != "original" for r in rows)
    selections: dict[str, Any] = {}
    if needs_scores:
        t = time.perf_counter()
        say(f"scoring ({cfg.method}) on the safety and utility sets ...")
        safety = load_examples(cfg.safety, limit=cfg.n_safety, require_response=True)
        utility = load_examples(cfg.utility, limit=cfg.n_utility, require_response=True)
        bs, cache = cfg.batch_size, cfg.use_cache
        s_scores = score(model, tokenizer, safety, cfg.method, batch_size=bs, use_cache=cache)
        u_scores = score(model, tokenizer, utility, cfg.method, batch_size=bs, use_cache=cache)
        timings["score"] = time.perf_counter() - t
        sd = selection.set_difference(s_scores, u_scores, cfg.p, cfg.q, scope=cfg.scope)
        if "set_difference" in rows or "random" in rows:
            selections["set_difference"] = sd
        if "safety_top_q" in rows:
            selections["safety_top_q"] = selection.top(s_scores, fraction=cfg.q, scope=cfg.scope)
        if "random" in rows:
            selections["random"] = selection.random_selection(sd, seed=cfg.seed)

    results: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    kl_ref = build_kl_reference(model, tokenizer, ev)  # the original model's answers, before any removal
    for row in rows:
        say(f"evaluating: {ROW_TITLES[row]} ...")
        if row == "original":
            metrics = evaluate_safety(model, tokenizer, ev, judge=judge, kl_reference=kl_ref)
            metrics.update(removed=0.0, count=0)
        else:
            sel = selections[row]
            with ablate(model, sel) as n:
                metrics = evaluate_safety(model, tokenizer, ev, judge=judge, kl_reference=kl_ref)
            metrics.update(removed=sel.fraction(), count=n)
        results[row] = metrics
    timings["evaluate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    out: dict[str, Any] = {
        "model": cfg.model,
        "method": cfg.method,
        "p": cfg.p,
        "q": cfg.q,
        "scope": cfg.scope,
        "seed": cfg.seed,
    }
    main = results.get("set_difference") or results[rows[0]]
    out.update({k: main[k] for k in METRICS})
    if "original" in results and "set_difference" in results:
        out["asr_gain"] = results["set_difference"]["asr"] - results["original"]["asr"]
        out["accuracy_drop"] = (
            results["original"]["benign_accuracy"] - results["set_difference"]["benign_accuracy"]
        )
    if needs_scores:
        out["scored_weights"] = selections[next(iter(selections))].numel()
    out["rows"] = results
    out["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return out
