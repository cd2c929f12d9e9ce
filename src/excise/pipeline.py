"""The safety study of Wei et al. 2024 as one function: score -> set difference -> prune -> evaluate.

``safety_study`` scores the model on the safety and utility calibration sets, selects the weights
in the top q of the safety scores and not in the top p of the utility scores (per matrix), and
measures ASR, benign accuracy and perplexity with those weights removed. Baseline rows (the
original model, top-q safety pruning without the set difference, and the same number of
weights chosen at random) are optional; the sweep engine calls it once per (p, q).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from excise.errors import ExciseError

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


def _check_rows(rows: Sequence[str]) -> list[str]:
    """The rows without duplicates, or an ExciseError naming the known ones."""
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        raise ExciseError(f"unknown study row(s) {bad or '(none given)'}; choose from {', '.join(ROWS)}")
    return list(dict.fromkeys(rows))


def safety_study(
    model_name: str = "organism",
    p: float = DEFAULT_P,
    q: float = DEFAULT_Q,
    method: str = "snip",
    *,
    safety: Any = "safety",
    utility: Any = "utility",
    rows: Sequence[str] = ("set_difference",),
    scope: str = "matrix",
    batch_size: int = 8,
    seed: int = 0,
    eval_config: Any | None = None,
    judge: Any | None = None,
    reference: str | None = "auto",
    max_ppl: float = 50.0,
    use_cache: bool = True,
    model: Any | None = None,
    tokenizer: Any | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | str | None = "auto",
) -> dict[str, Any]:
    """Metrics of the set-difference pruning at (p, q), plus the requested baseline ``rows``.

    Returns a flat dict for sweeps (``removed``, ``asr``, ``benign_accuracy``, ``perplexity`` of the
    set-difference row when it is among ``rows``) with every row's metrics under ``rows``.
    ``reference="auto"`` gates coherence with the organism's helpful-only base model; ``threads``
    sets torch's thread count for the call (``"auto"``: ``excise.threads.auto_threads()``; ``None``: unchanged).
    """
    from excise.threads import auto_threads, use_threads

    if threads == "auto":
        threads = auto_threads()
    elif threads is not None and (isinstance(threads, str) or threads < 1):
        raise ExciseError(f"threads must be a positive number, 'auto' or None, got {threads!r}")

    rows = _check_rows(rows)
    with use_threads(threads):
        return _study(
            model_name,
            p,
            q,
            method,
            safety,
            utility,
            rows,
            scope,
            batch_size,
            seed,
            eval_config,
            judge,
            reference,
            max_ppl,
            use_cache,
            model,
            tokenizer,
            log,
        )


def _study(
    model_name: str,
    p: float,
    q: float,
    method: str,
    safety: Any,
    utility: Any,
    rows: list[str],
    scope: str,
    batch_size: int,
    seed: int,
    eval_config: Any | None,
    judge: Any | None,
    reference: str | None,
    max_ppl: float,
    use_cache: bool,
    model: Any | None,
    tokenizer: Any | None,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The body of ``safety_study`` (arguments already checked)."""
    from excise import selection
    from excise.evaluation import SafetyEvalConfig, evaluate_safety
    from excise.interventions import ablate
    from excise.models import load_model
    from excise.scoring import get_method, score

    say = log or (lambda _msg: None)
    p = selection.check_fraction("p", p)
    q = selection.check_fraction("q", q)
    get_method(method)
    cfg = eval_config or SafetyEvalConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is None or tokenizer is None:
        model, tokenizer = load_model(model_name)
    model.eval()
    timings["load"] = time.perf_counter() - t0

    if judge is None:
        ref_name = reference_for(model_name) if reference == "auto" else reference
        ref = load_model(ref_name) if ref_name else None
        # the organism's base model has a fixed threshold; a real reference is calibrated (None)
        judge = make_judge(ref, max_ppl=max_ppl if ref_name == "organism-base" else None)

    needs_scores = any(r != "original" for r in rows)
    selections: dict[str, Any] = {}
    if needs_scores:
        t = time.perf_counter()
        say(f"scoring ({method}) on the safety and utility sets ...")
        s_scores = score(model, tokenizer, safety, method, batch_size=batch_size, use_cache=use_cache)
        u_scores = score(model, tokenizer, utility, method, batch_size=batch_size, use_cache=use_cache)
        timings["score"] = time.perf_counter() - t
        sd = selection.set_difference(s_scores, u_scores, p, q, scope=scope)
        if "set_difference" in rows or "random" in rows:
            selections["set_difference"] = sd
        if "safety_top_q" in rows:
            selections["safety_top_q"] = selection.top(s_scores, fraction=q, scope=scope)
        if "random" in rows:
            selections["random"] = selection.random_selection(sd, seed=seed)

    from excise.evaluation import build_kl_reference

    results: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    kl_ref = build_kl_reference(model, tokenizer, cfg)  # the original model's answers, before any removal
    for row in rows:
        say(f"evaluating: {ROW_TITLES[row]} ...")
        if row == "original":
            metrics = evaluate_safety(model, tokenizer, cfg, judge=judge, kl_reference=kl_ref)
            metrics.update(removed=0.0, count=0)
        else:
            sel = selections[row]
            with ablate(model, sel) as n:
                metrics = evaluate_safety(model, tokenizer, cfg, judge=judge, kl_reference=kl_ref)
            metrics.update(removed=sel.fraction(), count=n)
        results[row] = metrics
    timings["evaluate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    out: dict[str, Any] = {
        "model": model_name,
        "method": method,
        "p": p,
        "q": q,
        "scope": scope,
        "seed": seed,
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
