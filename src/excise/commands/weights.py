"""Weight-level commands: ``info``, ``score``, ``select``, ``prune``.

Each command validates its arguments (paths, names, ranges) before loading a model, and writes
its output atomically, so an error leaves no half-written file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from excise.errors import ExciseError


def _output_pair(out: Path, overwrite: bool, command: str) -> Path:
    """Check ``--out`` of a command writing ``NAME.safetensors`` + ``NAME.json`` before any work.

    Refuses a name with another ending (``notes.txt`` would become ``notes.safetensors``), a folder, a
    place that cannot be written, and (without ``--overwrite``) any existing file of the pair.
    Returns the tensor file's path.
    """
    from excise.utils import check_writable_location

    if out.suffix in (".safetensors", ".json"):
        stem = out.with_suffix("")
    else:
        stem = out
    if stem.suffix or not stem.name:
        raise ExciseError(
            f"--out {out}: {command} writes NAME.safetensors and NAME.json, so NAME may not hold a '.'; "
            f"pass e.g. --out {stem.parent / stem.name.replace('.', '_')}"
        )
    if out.is_dir():
        raise ExciseError(f"--out {out} is a folder; pass a file path such as {out / 'scores'}")
    check_writable_location(out)
    pair = (stem.with_suffix(".safetensors"), stem.with_suffix(".json"))
    for path in pair:
        if path.is_dir():
            raise ExciseError(f"--out {out}: {path} is a folder; choose another --out")
        if path.exists() and not overwrite:
            own = _written_by_excise(pair)
            what = f"an earlier output of 'excise {command}'" if own else "a file excise did not write"
            raise ExciseError(
                f"--out {out}: {path} already exists ({what}); pass --overwrite to replace it, "
                "or choose another --out (nothing was written)"
            )
    return pair[0]


def _written_by_excise(pair: tuple[Path, Path]) -> bool:
    import json

    try:
        side = json.loads(pair[1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(side, dict) and side.get("kind") in ("scores", "selection") and pair[0].is_file()


def _check_new_dir(out: Path) -> None:
    from excise.utils import check_writable_location

    check_writable_location(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExciseError(
            f"output folder {out} already exists and is not empty; choose a new path or delete it"
        )


def _check_file(path: Path, what: str) -> None:
    """The input pair must exist, and its sidecar must be an object naming its kind and unit."""
    import json

    from excise.core import UNITS

    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    tpath, jpath = Path(f"{stem}.safetensors"), Path(f"{stem}.json")
    if not tpath.is_file():
        raise ExciseError(
            f"{what} file not found: {tpath} (pass a file written by 'excise score' or 'excise select')"
        )
    if not jpath.is_file():
        raise ExciseError(f"{what} sidecar not found: {jpath} (it is written next to {tpath.name})")
    try:
        side = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExciseError(f"{what} sidecar {jpath} is not readable JSON ({err}); recompute it") from None
    if not isinstance(side, dict):
        raise ExciseError(
            f"{what} sidecar {jpath} holds a {type(side).__name__}, not an object with 'kind' and 'unit'; "
            "recompute it"
        )
    if side.get("unit") not in UNITS:
        raise ExciseError(
            f"{what} sidecar {jpath} has no valid 'unit' (got {side.get('unit')!r}; one of {', '.join(UNITS)})"
            "; recompute it"
        )


def info(
    model: Annotated[
        str, typer.Argument(help="Built-in name (tiny-llama, organism, ...) or a model folder.")
    ],
    dtype: Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")] = "float32",
) -> None:
    """Show what the architecture adapter sees: family, layers, heads, linear layers.

    Example: excise info tiny-llama
    """
    from excise.models import describe, load_model
    from excise.models.load import resolve_dtype

    resolve_dtype(dtype)
    m, _ = load_model(model, dtype=dtype)
    for k, v in describe(m).items():
        typer.echo(f"{k}: {v}")


def score(
    model: Annotated[
        str, typer.Argument(help="Built-in name (tiny-llama, organism, ...) or a model folder.")
    ],
    method: Annotated[str, typer.Option("--method", help="magnitude, wanda or snip (= wandg).")],
    out: Annotated[Path, typer.Option("--out", help="Output path (.safetensors + .json sidecar).")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Built-in set (safety, utility, ...) or a .jsonl/.json/.csv file; needed by wanda and snip.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per forward pass.")] = 8,
    max_length: Annotated[
        int | None,
        typer.Option(
            "--max-length", help="Truncate samples to this many tokens (default: the model's context)."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute even when cached scores exist.")
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="Glob of module names to score (repeatable), e.g. '*.mlp.*'."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")] = "float32",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files at --out.")] = False,
) -> None:
    """Score every weight of the model's linear layers on a calibration set.

    Example: excise score tiny-llama --data safety --method snip --out scores/safety
    """
    # checks that need no torch come first: a wrong --out fails in a fraction of a second
    if batch_size < 1:
        raise ExciseError(f"--batch-size must be at least 1, got {batch_size}")
    if max_length is not None and max_length < 2:
        raise ExciseError(f"--max-length must be at least 2, got {max_length}")
    _output_pair(out, overwrite, "score")
    from excise.data import load_examples
    from excise.models import load_model
    from excise.models.load import resolve_device, resolve_dtype
    from excise.scoring import get_method
    from excise.scoring import score as score_fn

    m = get_method(method)
    resolve_dtype(dtype)
    resolve_device(device)
    if m.needs_data and data is None:
        raise ExciseError(
            f"--data is required for {m.name} (a built-in set such as 'safety', or a data file)"
        )
    examples = load_examples(data) if m.needs_data and data is not None else None
    mdl, tok = load_model(model, dtype=dtype, device=device)
    from excise.data import context_length

    ctx = context_length(mdl)
    if max_length is not None and ctx is not None and max_length > ctx:
        raise ExciseError(
            f"--max-length {max_length} is more than the context of {model} ({ctx} tokens); "
            f"pass at most {ctx}, or leave it out to use the context"
        )
    s = score_fn(
        mdl,
        tok,
        examples,
        method,
        batch_size=batch_size,
        max_length=max_length,
        use_cache=not no_cache,
        targets=target or None,
    )
    path = s.save(out)
    typer.echo(f"{m.name} scores for {len(s)} tensors ({s.numel():,} weights) written to {path}")


def select(
    scores: Annotated[Path | None, typer.Argument(help="Scores written by 'excise score'.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output mask path (.safetensors + .json sidecar).")
    ] = None,
    top_fraction: Annotated[
        float | None, typer.Option("--top", help="Fraction of units to select, in (0, 1].")
    ] = None,
    count: Annotated[int | None, typer.Option("--count", help="Number of units to select per group.")] = None,
    scope: Annotated[str, typer.Option(help="Comparison group: row, matrix, layer or global.")] = "matrix",
    bottom: Annotated[
        bool, typer.Option("--bottom", help="Select the lowest scores instead of the highest.")
    ] = False,
    set_difference: Annotated[
        bool,
        typer.Option(
            "--set-difference", help="Top q of --safety minus top p of --utility (Wei et al. 2024)."
        ),
    ] = False,
    safety: Annotated[
        Path | None, typer.Option("--safety", help="Safety scores (for --set-difference).")
    ] = None,
    utility: Annotated[
        Path | None, typer.Option("--utility", help="Utility scores (for --set-difference).")
    ] = None,
    p: Annotated[float | None, typer.Option("--p", help="Utility fraction per matrix, in (0, 1].")] = None,
    q: Annotated[float | None, typer.Option("--q", help="Safety fraction per matrix, in (0, 1].")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files at --out.")] = False,
) -> None:
    """Turn scores into a boolean mask: top/bottom fraction or count, or a set difference.

    Examples: excise select scores/safety --top 0.01 --scope row --out masks/top1;
    excise select --set-difference --safety scores/safety --utility scores/utility --p 0.05 --q 0.05 --out masks/sd
    """
    if out is None:
        raise ExciseError("--out is required (the path of the mask to write)")
    _output_pair(out, overwrite, "select")
    from excise import selection as S
    from excise.core import Scores

    if set_difference:
        if scores is not None or top_fraction is not None or count is not None:
            raise ExciseError(
                "--set-difference takes --safety, --utility, --p and --q, not SCORES/--top/--count"
            )
        if safety is None or utility is None or p is None or q is None:
            raise ExciseError("--set-difference needs --safety, --utility, --p and --q")
        S.check_fraction("--p", p)
        S.check_fraction("--q", q)
        if scope not in S.SCOPES:
            raise ExciseError(f"unknown --scope '{scope}'; choose one of {', '.join(S.SCOPES)}")
        _check_file(safety, "safety scores")
        _check_file(utility, "utility scores")
        sel = S.set_difference(Scores.load(safety), Scores.load(utility), p=p, q=q, scope=scope)
    else:
        if scores is None:
            raise ExciseError("pass the SCORES file (or use --set-difference with --safety and --utility)")
        if safety is not None or utility is not None or p is not None or q is not None:
            raise ExciseError("--safety/--utility/--p/--q only go with --set-difference")
        if (top_fraction is None) == (count is None):
            raise ExciseError("give exactly one of --top FRACTION or --count N")
        if top_fraction is not None:
            S.check_fraction("--top", top_fraction)
        if count is not None and count < 0:
            raise ExciseError(f"--count must be a non-negative integer, got {count}")
        if scope not in S.SCOPES:
            raise ExciseError(f"unknown --scope '{scope}'; choose one of {', '.join(S.SCOPES)}")
        _check_file(scores, "scores")
        sel = S.top(Scores.load(scores), fraction=top_fraction, count=count, scope=scope, largest=not bottom)
    path = sel.save(out)
    typer.echo(f"selected {sel.count():,} of {sel.numel():,} units ({100 * sel.fraction():.4f}%) -> {path}")


def prune(
    model: Annotated[
        str, typer.Argument(help="Built-in name (tiny-llama, organism, ...) or a model folder.")
    ],
    mask: Annotated[Path, typer.Option("--mask", help="Mask written by 'excise select'.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the pruned model (save_pretrained).")],
    base: Annotated[
        str | None,
        typer.Option("--base", help="Restore the selected weights from this model instead of zeroing them."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")] = "float32",
) -> None:
    """Zero the selected weights (or restore them from --base) and save the model with save_pretrained.

    Example: excise prune tiny-llama --mask masks/sd --out models/pruned
    """
    from excise.core import Selection
    from excise.interventions import prune as prune_fn
    from excise.models import load_model, save_model
    from excise.models.load import resolve_dtype

    _check_file(mask, "mask")
    _check_new_dir(out)
    resolve_dtype(dtype)
    sel = Selection.load(mask)
    mdl, tok = load_model(model, dtype=dtype)
    base_model = load_model(base, dtype=dtype)[0] if base is not None else None
    n = prune_fn(mdl, sel, base=base_model)
    save_model(mdl, tok, out)
    verb = "restored" if base is not None else "zeroed"
    typer.echo(f"{verb} {n:,} weights in {len(sel)} tensors; model saved to {out}")


def register(app: typer.Typer) -> None:
    """Add ``info``, ``score``, ``select`` and ``prune`` to the ``excise`` app."""
    app.command("info")(info)
    app.command("score")(score)
    app.command("select")(select)
    app.command("prune")(prune)
