"""``excise spd``: run a named (or YAML) SPD experiment, list the registered ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from excise.errors import ExciseError

app = typer.Typer(
    name="spd",
    help="Stochastic parameter decomposition (SPD) of toy models and LMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(err: ExciseError) -> None:
    """Print a user error on one line and exit with status 2 (also when the app runs standalone)."""
    typer.echo(f"error: {err}", err=True)
    sys.exit(2)


def _summary(metrics: dict) -> dict:
    keys = ("tms", "tms_linear2", "alive", "ci_errors", "resid_mlp", "reconstruction", "checks", "passed")
    out = {k: metrics[k] for k in keys if k in metrics}
    t = metrics.get("timing", {})
    out["train_seconds"] = round(float(t.get("train_seconds", 0.0)), 1)
    return out


@app.command("run")
def run(
    experiment: str = typer.Argument(
        ..., help="registered experiment name (see 'excise spd list') or YAML path"
    ),
    set_: list[str] = typer.Option(None, "--set", "-s", help="override a config key: --set train.steps=500"),
    out: Path = typer.Option(None, "--out", "-o", help="run folder (default runs/spd/<name>-<config hash>)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run folder"),
) -> None:
    """Train and evaluate one SPD experiment; writes config, checkpoints, metrics and plots."""
    from excise.spd.registry import run_experiment

    try:
        res = run_experiment(experiment, list(set_ or []), out)
    except ExciseError as err:
        _fail(err)
    if not quiet:
        typer.echo(json.dumps(_summary(res.metrics), indent=1, default=str))
    typer.echo(f"run folder: {res.out_dir}")


@app.command("list")
def list_cmd() -> None:
    """List the registered SPD experiments with their target and decomposed modules."""
    from excise.spd.registry import list_experiments, load_config

    for name in list_experiments():
        try:
            cfg = load_config(name)
        except ExciseError as err:
            typer.echo(f"{name}\t(invalid: {err})")
            continue
        mods = ", ".join(f"{m.pattern}:C={m.C}" for m in cfg.decomposition.modules)
        typer.echo(f"{name}\t{cfg.target.kind}\t{mods}\tsteps={cfg.train.steps}")
