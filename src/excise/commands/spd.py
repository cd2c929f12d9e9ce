"""``excise spd``: run a named (or YAML) SPD experiment, list the registered ones.

Kept apart from :mod:`excise.spd` so that mounting the group (``excise --help``) imports no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from excise.cli import translate_errors
from excise.errors import ExciseError

app = typer.Typer(
    name="spd",
    help="Stochastic parameter decomposition (SPD) of toy models and LMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RUN_MARKERS = ("config.yaml", "status.json")


def _summary(metrics: dict) -> dict:
    keys = ("tms", "tms_linear2", "alive", "ci_errors", "resid_mlp", "reconstruction", "checks", "passed")
    out = {k: metrics[k] for k in keys if k in metrics}
    t = metrics.get("timing", {})
    out["train_seconds"] = round(float(t.get("train_seconds", 0.0)), 1)
    return out


@app.command("run")
@translate_errors
def run(
    experiment: str = typer.Argument(
        ..., help="registered experiment name (see 'excise spd list') or YAML path"
    ),
    set_: list[str] = typer.Option(
        None,
        "--set",
        "-s",
        help="override a config key: --set train.steps=500, --set decomposition.modules.0.C=4",
    ),
    out: Path = typer.Option(None, "--out", "-o", help="run folder (default runs/spd/<name>-<config hash>)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run folder"),
) -> None:
    """Train and evaluate one SPD experiment; writes config, checkpoints, metrics and plots."""
    from excise.spd.registry import load_config, run_experiment, run_id
    from excise.utils import check_output_dir, check_plain_name

    cfg = load_config(experiment, list(set_ or []))
    check_plain_name(cfg.name, "SPD experiment name")
    folder = out if out is not None else Path("runs") / "spd" / run_id(cfg)
    check_output_dir(folder, RUN_MARKERS, "SPD run folder", what="--out" if out is not None else "run folder")
    res = run_experiment(cfg, None, folder)
    if not quiet:
        typer.echo(json.dumps(_summary(res.metrics), indent=1, default=str))
    typer.echo(f"run folder: {res.out_dir}")


@app.command("list")
@translate_errors
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


def register(parent: typer.Typer) -> None:
    """Mount ``excise spd`` on the ``excise`` app."""
    parent.add_typer(app, name="spd", help="Stochastic parameter decomposition (SPD).")


def main(argv: list[str] | None = None) -> None:
    """Run ``excise spd`` on its own (``python -m excise.spd.cli``), with the CLI's exit codes."""
    from excise.cli import exit_with

    exit_with(app, argv, prog_name="excise spd")


if __name__ == "__main__":
    main()
