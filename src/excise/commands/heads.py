"""Head commands: ``heads`` (one-shot duplicate-head pruning) and ``lmeval`` (zero-shot tasks).

Every argument (fraction, budget, intervention, the model family's head adapter, the tasks, the
lm-eval extra) is checked before a forward pass; outputs go into a new folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from excise.errors import ExciseError

ModelArg = Annotated[
    str, typer.Argument(help="Built-in name (tiny-llama, smollm2-135m-instruct, ...) or a model folder.")
]
TasksOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tasks",
        help="Shipped task (organism-skills, smollm2-commonsense), a task .jsonl, or a folder of "
        ".jsonl tasks / lm-eval .yaml files. Repeatable; commas also separate.",
    ),
]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for x in values or [] for v in x.split(",") if v.strip()]


def heads(
    model: ModelArg,
    out: Annotated[
        Path, typer.Option("--out", help="New folder for scores, selection, pruning log, results.")
    ],
    metric: Annotated[str, typer.Option(help="euclidean, cosine or random.")] = "cosine",
    budget: Annotated[str, typer.Option(help="balanced, imbalanced, importance or random.")] = "balanced",
    fraction: Annotated[float, typer.Option(help="Fraction of heads to prune, in [0, 1).")] = 0.25,
    representation: Annotated[
        str, typer.Option(help="output (per-head outputs) or pattern (attention).")
    ] = "output",
    intervention: Annotated[
        str, typer.Option(help="mask, zero, merge, duplicate, or remove (balanced, no GQA).")
    ] = "mask",
    group_metric: Annotated[
        str | None,
        typer.Option("--group-metric", help="Pick each cluster's kept head on this distance instead."),
    ] = None,
    data: Annotated[
        str, typer.Option(help="Prompts the heads are compared on (built-in set or file).")
    ] = "utility",
    n_prompts: Annotated[int | None, typer.Option("--n-prompts", help="Use only the first N prompts.")] = 64,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Tokens per prompt.")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per forward pass.")] = 8,
    tasks: TasksOpt = None,
    evaluator: Annotated[str, typer.Option(help="excise (built-in) or lm-eval.")] = "excise",
    limit: Annotated[int | None, typer.Option(help="Documents per task.")] = None,
    save_model: Annotated[
        bool, typer.Option("--save-model", help="Also save the pruned model (save_pretrained) to OUT/model.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random metric / budget.")] = 0,
) -> None:
    """Prune duplicate attention heads: cluster each layer's heads, keep the medoids, drop the rest.

    Example: excise heads tiny-llama --metric cosine --budget balanced --fraction 0.25 --out runs/heads
    """
    from excise.commands.weights import _check_new_dir
    from excise.evaluation.lmeval import require_lmeval, resolve_tasks
    from excise.head_pruning import (
        check_head_request,
        evaluate_pruned,
        load_prompts,
        prune_heads_once,
    )
    from excise.interventions.heads import zero_heads
    from excise.models import load_model
    from excise.models import save_model as save_fn
    from excise.scoring.heads import METRICS, REPRESENTATIONS
    from excise.selection_heads import check_head_fraction, write_pruning_log
    from excise.utils import atomic_write_json

    check_head_fraction(fraction)
    if metric not in METRICS:
        raise ExciseError(f"unknown --metric '{metric}'; choose one of {', '.join(METRICS)}")
    if group_metric is not None and group_metric not in ("euclidean", "cosine"):
        raise ExciseError(f"unknown --group-metric '{group_metric}'; choose euclidean or cosine")
    if representation not in REPRESENTATIONS:
        raise ExciseError(f"unknown --representation '{representation}'; choose output or pattern")
    if evaluator not in ("excise", "lm-eval"):
        raise ExciseError(f"unknown --evaluator '{evaluator}'; choose excise or lm-eval")
    if batch_size < 1:
        raise ExciseError(f"--batch-size must be at least 1, got {batch_size}")
    task_list = _split(tasks)
    if task_list:
        resolve_tasks(task_list)
        if evaluator == "lm-eval":
            require_lmeval()
    _check_new_dir(out)
    mdl, tok = load_model(model)
    check_head_request(mdl, budget, fraction, intervention)
    batches = load_prompts(data, tok, mdl, n_prompts, batch_size, max_length)
    before = None
    if task_list:
        from excise.evaluation.lmeval import evaluate_tasks

        before = evaluate_tasks(mdl, tok, task_list, evaluator=evaluator, limit=limit)
    scores, sel = prune_heads_once(
        mdl, tok, batches, metric=metric, budget=budget, fraction=fraction, representation=representation,
        intervention=intervention, group_metric=group_metric, seed=seed,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    scores.save(out / "head_scores")
    sel.save(out / "head_selection")
    jpath, tpath = write_pruning_log(sel, out)
    result: dict[str, object] = {
        "model": model,
        "heads_pruned": sel.count(),
        "heads_total": sel.numel(),
        "per_layer_pruned": sel.meta["per_layer"],
        "metric": metric,
        "budget": budget,
        "fraction": fraction,
        "representation": representation,
        "intervention": intervention,
    }
    if task_list:
        result["accuracy_before"] = before
        result["accuracy_after"] = evaluate_pruned(mdl, tok, sel, intervention, task_list, evaluator, limit)
    atomic_write_json(out / "results.json", result)
    typer.echo(f"pruned {sel.count()} of {sel.numel()} heads ({budget}, {metric}); log: {tpath}")
    if task_list:
        for t, r in result["accuracy_after"].items():  # type: ignore[union-attr]
            typer.echo(f"  {t}: acc {before[t]['acc']:.4f} -> {r['acc']:.4f}")  # type: ignore[index]
    if save_model:
        if intervention == "mask" and sel.count():
            zero_heads(mdl, sel)  # the saved form of the mask: the same function
        save_fn(mdl, tok, out / "model")
        typer.echo(f"model saved to {out / 'model'}")


def lmeval(
    model: ModelArg,
    tasks: TasksOpt = None,
    evaluator: Annotated[
        str, typer.Option(help="lm-eval (lm-evaluation-harness) or excise (built-in).")
    ] = "lm-eval",
    limit: Annotated[int | None, typer.Option(help="Documents per task.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="lm-eval batch size.")] = 8,
    out: Annotated[Path | None, typer.Option("--out", help="Write the results as JSON here.")] = None,
) -> None:
    """Zero-shot multiple-choice accuracy on local tasks, with lm-evaluation-harness or our evaluator.

    Example: excise lmeval tiny-llama --tasks smollm2-commonsense --limit 8
    """
    from excise.evaluation.lmeval import evaluate_lmeval, evaluate_mc, require_lmeval, resolve_tasks
    from excise.models import load_model
    from excise.utils import atomic_write_json, check_writable_location

    task_list = _split(tasks)
    if not task_list:
        raise ExciseError("--tasks is required (e.g. --tasks smollm2-commonsense, a .jsonl file or a folder)")
    if evaluator not in ("excise", "lm-eval"):
        raise ExciseError(f"unknown --evaluator '{evaluator}'; choose lm-eval or excise")
    if limit is not None and limit < 1:
        raise ExciseError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise ExciseError(f"--batch-size must be at least 1, got {batch_size}")
    if evaluator == "lm-eval":
        require_lmeval()
    resolve_tasks(task_list)
    if out is not None:
        if out.exists():
            raise ExciseError(f"--out {out} already exists; choose another path (nothing was written)")
        check_writable_location(out)
    mdl, tok = load_model(model)
    if evaluator == "lm-eval":
        res = evaluate_lmeval(mdl, tok, task_list, limit=limit, batch_size=batch_size)
    else:
        res = evaluate_mc(mdl, tok, task_list, limit=limit)
    for t, r in res.items():
        typer.echo(f"{t}: acc {r['acc']:.4f} acc_norm {r['acc_norm']:.4f} (n={r['n']})")
    if out is not None:
        atomic_write_json(out, {"model": model, "evaluator": evaluator, "results": res})
        typer.echo(f"results written to {out}")


def register(app: typer.Typer) -> None:
    """Add ``heads`` and ``lmeval`` to the ``excise`` app."""
    app.command("heads")(heads)
    app.command("lmeval")(lmeval)
