"""``excise purity MODEL --data digits --kept 8,16,24,32 --out DIR``: the feature-purity sweep in one go.

Thin: parse, check every argument before loading a model, run
:func:`excise.experiments.types.feature_purity.purity_study`, print the table and where the files are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from excise.errors import ExciseError


def _parse_kept(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ExciseError(
            f"--kept takes whole numbers separated by commas (e.g. 8,16,24,32), got '{text}'"
        ) from None
    if not vals:
        raise ExciseError("--kept needs at least one count (e.g. 8,16,24,32)")
    return vals


def purity(
    model: Annotated[
        str, typer.Argument(help="built-in CLIP (digits-clip, shapes-clip) or an HF CLIP folder")
    ],
    data: Annotated[
        str, typer.Option(help="image set: digits, shapes, or a folder root/<class>/<images>")
    ] = "digits",
    kept: Annotated[str, typer.Option(help="features kept, comma-separated")] = "8,16,24,32",
    out: Annotated[Path, typer.Option(help="new folder for the CSVs and plots")] = Path("purity-out"),
    draws: Annotated[int, typer.Option(help="random subsets per kept count")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the random strategy")] = 0,
    sides: Annotated[str, typer.Option(help="image (research code: image features only) or both")] = "image",
    renormalise: Annotated[bool, typer.Option(help="renormalise masked embeddings")] = False,
    measure: Annotated[str, typer.Option(help="l1 (research score), l2 or linf")] = "l1",
    projection: Annotated[
        list[str] | None, typer.Option(help="projection to score (repeat; default image and text)")
    ] = None,
    orientation: Annotated[str, typer.Option(help="auto, out_in (HF) or in_out (open_clip)")] = "auto",
    template: Annotated[list[str] | None, typer.Option(help="prompt template with {} (repeat)")] = None,
    legacy_columns: Annotated[bool, typer.Option(help="the research code's CSV header")] = False,
    no_ablation: Annotated[bool, typer.Option(help="skip per-feature ablation importance")] = False,
    overwrite: Annotated[bool, typer.Option(help="write into an existing non-empty --out")] = False,
) -> None:
    """Keep the purest / least pure / random embedding features; zero-shot accuracy and silhouette."""
    from excise.config import validate
    from excise.experiments.types.feature_purity import FeaturePurityConfig, check_inputs, purity_study
    from excise.utils import check_writable_location

    cfg = validate(
        FeaturePurityConfig,
        {
            "model": model,
            "data": data,
            "kept": _parse_kept(kept),
            "random_draws": draws,
            "seed": seed,
            "sides": sides,
            "renormalise": renormalise,
            "measure": measure,
            "projections": list(projection) if projection else None,
            "orientation": orientation,
            "templates": list(template) if template else None,
            "legacy_columns": legacy_columns,
            "ablation": not no_ablation,
        },
        what="purity options",
    )
    check_writable_location(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise ExciseError(
            f"--out {out} exists and is not an empty folder; pass --overwrite or choose a new folder"
        )
    check_inputs(cfg)
    from excise.threads import auto_threads, use_threads

    with use_threads(auto_threads()):
        metrics = purity_study(cfg, out)
    typer.echo(f"{'kept':>5} {'full':>7} {'min':>7} {'max':>7} {'random':>15}")
    for k in cfg.kept:
        r_mean, r_std = metrics.get(f"top1.random.{k}"), metrics.get(f"top1_std.random.{k}")
        cells = [metrics.get(f"top1.{st}.{k}") for st in ("full", "min", "max")]
        rnd = f"{r_mean:.3f}+-{r_std:.3f}" if r_mean is not None else "-"
        typer.echo(
            f"{k:>5} "
            + " ".join(f"{c:7.3f}" if c is not None else f"{'-':>7}" for c in cells)
            + f" {rnd:>15}"
        )
    if "ablation.spearman_vs_score" in metrics:
        typer.echo(
            f"ablation importance vs purity score: Spearman {metrics['ablation.spearman_vs_score']:.3f}"
        )
    typer.echo(f"wrote CSVs and plots to {out}")


def register(app: typer.Typer) -> None:
    """Add ``purity`` to the ``excise`` app."""
    from excise.cli import translate_errors

    app.command("purity")(translate_errors(purity))
