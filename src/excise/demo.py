"""``excise demo``: the whole safety pipeline on the organism, end to end, in a few CPU minutes.

The demo is the named experiment ``demo`` (``experiments/configs/demo.yaml``) of the
``safety-neurons`` type: train (or load) the aligned organism, score it with SNIP on the safety and
utility sets, prune the set difference (top q safety minus top p utility), and compare with the
original model, top-q safety pruning without the set difference, and as many weights chosen at
random. The report is that type's report (:func:`write_study_report`); ``excise run demo`` runs
the same study through the experiment engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from excise.errors import ExciseError
from excise.experiments.types.safety_neurons import format_table, write_study_report

__all__ = ["default_report_dir", "demo_config", "format_table", "run_demo"]


def default_report_dir() -> Path:
    """``./excise-report/demo-<timestamp>`` (a new folder per run)."""
    return Path("excise-report") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def demo_config(changes: Mapping[str, Any] | None = None, sets: list[str] | None = None) -> Any:
    """The ``demo`` experiment's config with ``--set`` overrides and ``changes`` (``eval`` merged key
    by key) applied and validated: a bad value is an ExciseError before anything runs."""
    from excise.experiments import load_document
    from excise.experiments.registry import parse_experiment_config

    exp = dict(load_document("demo", sets or []).experiment)
    for key, value in (changes or {}).items():
        if key == "eval" and isinstance(value, Mapping):
            exp["eval"] = {**exp.get("eval", {}), **value}
        else:
            exp[key] = value
    return parse_experiment_config(exp, what="demo config")


def run_demo(
    out: Path | None = None,
    recipe: str = "default",
    changes: Mapping[str, Any] | None = None,
    sets: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo, print the table and the report folder; returns the study result (with ``report``).

    ``changes`` / ``sets`` change the ``demo`` experiment's config (e.g. ``{"p": 0.1}`` or
    ``["eval.samples=4"]``); ``recipe`` names the organism recipe."""
    from excise.threads import auto_threads, use_threads
    from excise.zoo.organism import get_recipe

    cfg = demo_config(changes, sets)
    if cfg.model != "organism":
        raise ExciseError(
            f"the demo runs on the organism (model '{cfg.model}' given); use `excise run` for others"
        )
    rec = get_recipe(recipe)
    out = Path(out) if out is not None else default_report_dir()
    if out.exists() and not out.is_dir():
        raise ExciseError(f"--out {out} is a file; pass a folder for the report")
    with use_threads(auto_threads()):
        return _run(out, cfg, rec, echo)


def _run(out: Path, cfg: Any, rec: Any, echo: Callable[[str], None]) -> dict[str, Any]:
    """The body of ``run_demo`` (arguments already checked)."""
    from excise.pipeline import make_judge, safety_study
    from excise.zoo.organism import is_cached, load_organism, load_organism_base

    t0 = time.perf_counter()
    cached = is_cached(rec)
    echo(
        "organism: "
        + (
            "loading from the cache"
            if cached
            else "training from scratch (about three minutes on two CPU cores; cached afterwards)"
        )
    )
    model, tok = load_organism(rec)
    base = load_organism_base(rec)
    t_model = time.perf_counter() - t0
    echo(f"organism ready in {t_model:.1f}s ({sum(w.numel() for w in model.parameters()):,} parameters)")
    result = safety_study(
        cfg.model_copy(update={"threads": None}),  # run_demo set the threads
        judge=make_judge(base, max_ppl=cfg.max_ppl),
        model=model,
        tokenizer=tok,
        log=echo,
    )
    result["recipe"] = rec.name
    result["timings"]["organism"] = round(t_model, 2)
    result["timings"]["demo_total"] = round(time.perf_counter() - t0, 2)
    result["organism_cached"] = cached
    write_study_report(result, out)
    result["report"] = str(out)
    echo("")
    echo(format_table(result))
    echo("")
    echo(
        "ASR: share of held-out harmful prompts answered coherently without refusal (greedy); "
        "benign accuracy: held-out checkable answers; perplexity: held-out plain text."
    )
    echo(f"total {result['timings']['demo_total']:.0f}s; report: {out.resolve()}")
    return result
