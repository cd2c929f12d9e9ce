"""``excise finetune``: fine-tune with safety-critical weights frozen, re-score, compare.

Every argument is checked (ranges, files, the output folder) before a model is loaded; the mask is
checked against the model before any training. The output folder appears only when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from excise.errors import ExciseError


def finetune(
    model: Annotated[
        str, typer.Argument(help="Built-in name (organism, tiny-llama, ...) or a model folder.")
    ],
    data: Annotated[
        str, typer.Option("--data", help="Training set: a built-in set or a .jsonl/.json/.csv file.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="New folder: the model, the masks, analysis_summary.json.")
    ],
    freeze: Annotated[
        Path | None, typer.Option("--freeze", help="Freeze this mask (written by 'excise select').")
    ] = None,
    freeze_from: Annotated[
        str | None,
        typer.Option(
            "--freeze-from", help="Identify the weights to freeze with this method: snip (= wandg), wanda."
        ),
    ] = None,
    freeze_data: Annotated[
        str, typer.Option("--freeze-data", help="Safety set the method scores on (built-in name or file).")
    ] = "safety",
    sparsity: Annotated[
        float, typer.Option("--sparsity", help="Fraction of each matrix that is safety-critical, in (0, 1].")
    ] = 0.01,
    freeze_samples: Annotated[
        int | None,
        typer.Option("--freeze-samples", help="Calibration samples for the method (default: all)."),
    ] = 128,
    update_scale: Annotated[
        float,
        typer.Option(
            "--update-scale",
            "--grad-scale",
            help="Update factor of frozen weights in [0, 1]: 0 frozen, 0 < f < 1 partial (update scaled).",
        ),
    ] = 0.0,
    reselect_every: Annotated[
        int | None,
        typer.Option("--reselect-every", help="Dynamic freezing: re-score and re-select every N steps."),
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Training epochs.")] = 1.0,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Stop after N steps (-1: epochs decide).")
    ] = -1,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="Peak learning rate.")] = 5e-5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 8,
    max_length: Annotated[int, typer.Option("--max-length", help="Truncate examples to N tokens.")] = 256,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data order and initialisation.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", help="Use the first N training examples.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out.")] = False,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
) -> None:
    """Fine-tune with safety-critical weights frozen, then re-score and compare (analysis_summary.json).

    Example: excise finetune organism --data utility --freeze-from snip --freeze-data safety
    --sparsity 0.05 --epochs 1 --learning-rate 1e-4 --out runs/frozen
    """
    from excise.data import load_examples
    from excise.finetune import FinetuneArgs
    from excise.freeze_analysis import check_output_folder
    from excise.scoring import get_method
    from excise.selection import check_fraction

    check_output_folder(out, overwrite)
    if freeze is not None and freeze_from is not None:
        raise ExciseError("give --freeze MASK or --freeze-from METHOD, not both")
    check_fraction("--sparsity", sparsity)
    if not 0.0 <= update_scale <= 1.0:
        raise ExciseError(f"--update-scale must be in [0, 1] (0 = frozen, 1 = free), got {update_scale}")
    if reselect_every is not None and reselect_every < 1:
        raise ExciseError(f"--reselect-every must be at least 1 (steps), got {reselect_every}")
    if reselect_every is not None and freeze_from is None:
        raise ExciseError(
            "--reselect-every re-scores the model: give --freeze-from METHOD (and --freeze-data, --sparsity)"
        )
    for name, value in (("--batch-size", batch_size), ("--max-length", max_length)):
        if value < 1:
            raise ExciseError(f"{name} must be at least 1, got {value}")
    if learning_rate <= 0 or weight_decay < 0 or (epochs <= 0 and max_steps <= 0):
        raise ExciseError(
            "--learning-rate > 0, --weight-decay >= 0 and positive --epochs (or --max-steps) are needed"
        )
    if limit is not None and limit < 1:
        raise ExciseError(f"--limit must be at least 1, got {limit}")
    if freeze_samples is not None and freeze_samples < 1:
        raise ExciseError(f"--freeze-samples must be at least 1, got {freeze_samples}")
    method = get_method(freeze_from).name if freeze_from is not None else None
    args = FinetuneArgs(
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        weight_decay=weight_decay,
        update_scale=update_scale,
        max_steps=max_steps,
        reselect_every=reselect_every,
    )
    train = load_examples(data, limit=limit, require_response=True)
    calib = load_examples(freeze_data, limit=freeze_samples, require_response=True) if method else None
    mask = _load_mask(freeze) if freeze is not None else None

    from excise.finetune import check_frozen
    from excise.freeze_analysis import freeze_finetune
    from excise.models import load_model
    from excise.models.load import resolve_dtype

    resolve_dtype(dtype)
    mdl, tok = load_model(model, dtype=dtype)
    if mask is not None:
        check_frozen(mdl, mask)
    config = {
        "model": model,
        "data": data,
        "freeze": str(freeze) if freeze is not None else None,
        "freeze_from": method,
        "freeze_data": freeze_data if method else None,
        "freeze_samples": freeze_samples if method else None,
        "sparsity": sparsity if method else None,
        "limit": limit,
        "dtype": dtype,
    }
    summary = freeze_finetune(
        mdl,
        tok,
        train,
        args,
        out,
        frozen=mask,
        method=method,
        freeze_data=calib,
        sparsity=sparsity if method else None,
        overwrite=overwrite,
        config=config,
        log=typer.echo,
    )
    typer.echo(
        f"fine-tuned on {len(train)} examples ({summary['train_metrics'].get('train_loss', float('nan')):.4f} "
        f"mean loss) with {summary['original_safety_critical_count']:,} weights frozen"
        + (
            f"; re-scored: {summary['new_safety_critical_count']:,} safety-critical, "
            f"Jaccard {summary['jaccard']:.4f} with the original set"
            if summary.get("rescored")
            else ""
        )
    )
    for c in summary["frozen_changes"]:
        typer.echo(
            f"  step {c['step']}: frozen set re-selected (+{c['added']:,}, -{c['removed']:,}, Jaccard {c['jaccard']:.4f})"
        )
    typer.echo(f"model, masks and analysis_summary.json written to {out}")


def _load_mask(path: Path):  # type: ignore[no-untyped-def]
    from excise.core import Selection

    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    if not Path(f"{stem}.safetensors").is_file():
        raise ExciseError(
            f"--freeze: mask file not found: {stem}.safetensors (write one with 'excise select')"
        )
    sel = Selection.load(stem)
    if sel.unit != "weight":
        raise ExciseError(
            f"--freeze: {path} is a selection of unit '{sel.unit}'; freezing needs unit 'weight'"
        )
    return sel


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to the ``excise`` app."""
    app.command("finetune")(finetune)
