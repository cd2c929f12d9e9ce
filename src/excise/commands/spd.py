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


def _summary(metrics: dict) -> dict:
    """The headline metrics of a finished run (flat keys of the engine's metrics.json)."""
    heads = ("tms.", "tms_linear2.", "alive.", "ci_errors.", "resid_mlp.", "reconstruction.", "checks.")
    out = {k: v for k, v in metrics.items() if k.startswith(heads) or k == "passed"}
    out["train_seconds"] = round(float(metrics.get("timing.train_seconds", 0.0)), 1)
    return out


def _document(experiment: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    """The engine document of a registered SPD experiment (``spd-<name>``) or of an SPD YAML file."""
    from excise.config import read_yaml, validate
    from excise.experiments.sweep import ExperimentDocument, load_document
    from excise.spd.registry import config_data, experiment_path

    text = str(experiment)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        data = config_data(read_yaml(path))
        data.setdefault("name", path.stem)
        raw = {"name": f"spd-{data['name']}", "experiment": {"type": "spd", **data}}
        doc = validate(ExperimentDocument, raw, what=f"SPD config '{text}'")
        if overrides:  # the same override rules as a named document
            import tempfile

            import yaml

            with tempfile.TemporaryDirectory() as tmp:
                p = Path(tmp) / f"{doc.name}.yaml"
                p.write_text(yaml.safe_dump(doc.model_dump(mode="json")))
                return load_document(str(p), overrides)
        return doc
    return load_document(experiment_path(text).stem, overrides)


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
    out: Path = typer.Option(
        None, "--out", "-o", help="sweep folder of the run (default sweeps/spd-<name>-base)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run folder"),
) -> None:
    """Train and evaluate one SPD experiment (the base point of 'excise sweep spd-NAME').

    The run folder is an ordinary run of the experiment engine: config, status, metrics, and the
    checkpoints, history and plots under artifacts/. Run again: the finished run is reused.
    Example: excise spd run tms_5-2 --set train.steps=2000
    """
    from excise.experiments.executors import ExecutorConfig
    from excise.experiments.sweep import BASE_MODE, plan_runs, run_sweep

    doc = _document(experiment, list(set_ or []))
    _, planned = plan_runs(doc, BASE_MODE)  # validates the config before anything is written
    folder = out if out is not None else Path("sweeps") / f"{doc.name}-{BASE_MODE}"
    from excise.experiments.sweep import SWEEP_MARKERS
    from excise.utils import check_output_dir

    check_output_dir(
        folder, SWEEP_MARKERS, "sweep folder", what="--out" if out is not None else "sweep folder"
    )
    run_sweep(doc, folder, mode=BASE_MODE, executor=ExecutorConfig(kind="inprocess"))
    run_dir = folder / "runs" / planned[0].run_id
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        try:
            err = json.loads((run_dir / "status.json").read_text()).get("error") or {}
        except (OSError, ValueError):
            err = {}
        if isinstance(err, dict) and err.get("type") == "ExciseError":  # bad input found by the run
            raise ExciseError(
                str(err.get("message", "")).splitlines()[0] if err.get("message") else "bad input"
            )
        typer.echo(f"error: the SPD run failed; its log is {run_dir / 'run.log'}", err=True)
        raise typer.Exit(1)
    if not quiet:
        typer.echo(json.dumps(_summary(json.loads(metrics_path.read_text())), indent=1, default=str))
    typer.echo(f"run folder: {run_dir}")


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
