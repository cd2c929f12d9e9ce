"""Experiment commands: ``sweep``, ``status``, ``report`` and ``experiments list|show|run``.

Thin wrappers around :mod:`excise.experiments`; every error is an ExciseError printed on one line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from excise.errors import ExciseError, Interrupted

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, e.g. --set p=0.05 --set method=wanda "
        "(keys under executor./tracking./sweeps. address those sections). Repeatable.",
    ),
]
GridOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        "-g",
        help="Sweep a field over values, e.g. --grid seed=0,1,2 (crossed with the mode). Repeatable.",
    ),
]


def executor_overrides(
    executor: str | None = None,
    workers: int | None = None,
    gpus: str | None = None,
    partition: str | None = None,
    time_min: int | None = None,
    gpus_per_node: int | None = None,
    cpus_per_task: int | None = None,
    mem_gb: float | None = None,
    wait: bool | None = None,
) -> list[str]:
    """The short executor flags as the ``--set executor.*`` overrides they stand for.

    ``--partition gpu`` is ``--set executor.slurm.partition=gpu``, ``--workers 2`` is
    ``--set executor.workers=2``: both go through the same validation of the document.
    """
    flags: list[tuple[str, Any]] = [
        ("kind", executor),
        ("workers", workers),
        ("gpus", [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else None),
        ("slurm.partition", partition),
        ("slurm.time_min", time_min),
        ("slurm.gpus_per_node", gpus_per_node),
        ("slurm.cpus_per_task", cpus_per_task),
        ("slurm.mem_gb", mem_gb),
        ("slurm.wait", wait),
    ]
    # JSON is YAML: the value comes back exactly as given (a string stays a string)
    return [f"executor.{key}={json.dumps(val)}" for key, val in flags if val is not None]


def sweep(
    experiment: Annotated[
        str, typer.Argument(help="Named experiment (see 'excise experiments list') or a YAML file.")
    ],
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            "-m",
            help="Sweep mode of the experiment, e.g. predefined or grid; 'base' runs the base config alone.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (default: sweeps/NAME-MODE).")
    ] = None,
    sets: SetOpt = None,
    grid: GridOpt = None,
    executor: Annotated[
        str | None, typer.Option("--executor", "-e", help="inprocess, local or slurm.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="Local worker processes (default: one per GPU, else 1)."),
    ] = None,
    gpus: Annotated[str | None, typer.Option("--gpus", help="Local: GPU ids to use, e.g. 0,1.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition.")] = None,
    time_min: Annotated[
        int | None, typer.Option("--time-min", help="SLURM time limit per run, minutes.")
    ] = None,
    gpus_per_node: Annotated[int | None, typer.Option("--gpus-per-node", help="SLURM GPUs per run.")] = None,
    cpus_per_task: Annotated[int | None, typer.Option("--cpus-per-task", help="SLURM CPUs per run.")] = None,
    mem_gb: Annotated[float | None, typer.Option("--mem-gb", help="SLURM memory per run, GB.")] = None,
    wait: Annotated[
        bool | None,
        typer.Option(
            "--wait/--no-wait", help="SLURM: block until the jobs end (default: submit and return)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run and what is done; run nothing.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Rerun runs that failed before.")
    ] = False,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write the report when the sweep ends.")
    ] = True,
) -> None:
    """Run a sweep; resumable: finished runs are kept, interrupted ones redone, failed ones kept unless asked.

    Examples: excise sweep safety-neurons --mode grid --out sweeps/sn-grid --workers 2;
    excise sweep quadratic --grid seed=0,1 --executor inprocess --dry-run
    """
    from excise.experiments.sweep import load_document, parse_grid_options, plan_runs, run_sweep

    flags = executor_overrides(
        executor, workers, gpus, partition, time_min, gpus_per_node, cpus_per_task, mem_gb, wait
    )
    doc = load_document(experiment, [*(sets or []), *flags])
    extra = parse_grid_options(grid)
    mode_name, _ = plan_runs(doc, mode, extra)
    folder = out or Path("sweeps") / f"{doc.name}-{mode_name}"
    from excise.experiments.sweep import SWEEP_MARKERS
    from excise.utils import check_output_dir

    check_output_dir(folder, SWEEP_MARKERS, "sweep folder", what="--out" if out else "sweep folder")
    exe = doc.executor
    from excise.experiments.runs import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            result = run_sweep(
                doc,
                folder,
                mode=mode_name,
                extra_grid=extra,
                executor=exe,
                retry_failed=retry_failed,
                dry_run=dry_run,
                echo=typer.echo,
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: finished runs are kept in {folder}; run the same command again to resume"
        ) from None
    if dry_run:
        return
    s = result.states
    done, failed, running = s.get("done", 0), s.get("failed", 0), s.get("running", 0)
    typer.echo(
        f"{folder}: {done}/{result.planned} done, {failed} failed, {running} running, "
        f"{result.planned - done - failed - running} pending"
    )
    if result.submitted_jobs:
        return
    if report and s.get("done", 0):
        from excise.experiments.report import write_report

        rep = write_report(folder)
        for w in rep.warnings:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(f"report: {rep.html}")
    if s.get("failed", 0):
        typer.echo(
            "some runs failed; see 'excise status " + str(folder) + " --runs', rerun with --retry-failed",
            err=True,
        )
        raise typer.Exit(1)


def status(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep folder.")],
    runs: Annotated[bool, typer.Option("--runs", help="List every run.")] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", help="Refresh every N seconds until the sweep ends.")
    ] = None,
) -> None:
    """Show a sweep's progress: done / running / failed / pending, time per run, ETA.

    Example: excise status sweeps/safety-neurons-grid --runs
    """
    from excise.experiments.status import status_lines, sweep_status

    while True:
        st = sweep_status(sweep_dir)
        for line in status_lines(st, show_runs=runs):
            typer.echo(line)
        if not watch or st.finished:
            break
        time.sleep(watch)
        typer.echo("")


def report(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default: SWEEP_DIR/report).")
    ] = None,
) -> None:
    """Collect every run into results.csv/.parquet, draw the plots, write a static HTML page.

    Example: excise report sweeps/safety-neurons-grid
    """
    from excise.experiments.report import REPORT_MARKERS, write_report
    from excise.utils import check_output_dir

    if out is not None:
        check_output_dir(out, REPORT_MARKERS, "report folder")
    rep = write_report(sweep_dir, out)
    for w in rep.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"{rep.rows} runs -> {rep.csv}, {rep.parquet}")
    typer.echo(f"{len(rep.figures)} plots; report: {rep.html}")


experiments_app = typer.Typer(help="Experiment types and named experiments.", no_args_is_help=True)


@experiments_app.command("list")
def list_experiments() -> None:
    """List experiment types and named experiments with their sweep modes."""
    from excise.experiments.registry import experiment_types, named_experiments
    from excise.experiments.sweep import load_document, plan_runs

    typer.echo("experiment types:")
    for name, t in experiment_types().items():
        typer.echo(f"  {name:<18} {t.description.splitlines()[0] if t.description else ''}")
    typer.echo("named experiments:")
    for name in named_experiments():
        try:
            doc = load_document(name)
            modes = ", ".join(f"{m} ({len(plan_runs(doc, m)[1])} runs)" for m in doc.sweeps) or "-"
            typer.echo(f"  {name:<18} {doc.description}  [modes: {modes}]")
        except ExciseError as err:
            typer.echo(f"  {name:<18} (invalid: {err})")


@experiments_app.command("show")
def show(
    experiment: Annotated[str, typer.Argument(help="Named experiment or YAML file.")],
    sets: SetOpt = None,
    mode: Annotated[str | None, typer.Option("--mode", "-m", help="Also list the runs of this mode.")] = None,
) -> None:
    """Print the resolved experiment document (YAML) after overrides; with --mode, its runs."""
    import yaml

    from excise.experiments.sweep import load_document, plan_runs

    doc = load_document(experiment, sets or [])
    typer.echo(yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False).rstrip())
    if mode:
        name, planned = plan_runs(doc, mode)
        typer.echo(f"# mode {name}: {len(planned)} runs")
        for pr in planned:
            typer.echo(f"#   {pr.run_id}  {pr.label}")


@experiments_app.command("run")
def run_one(
    experiment: Annotated[str, typer.Argument(help="Named experiment or YAML file.")],
    sets: SetOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Sweep folder (default: sweeps/NAME-base).")
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", "-e", help="inprocess, local or slurm.")
    ] = "inprocess",
) -> None:
    """Run the base config of an experiment once (a sweep of one run, resumable like any sweep)."""
    sweep(
        experiment,
        mode="base",
        out=out,
        sets=sets,
        grid=None,
        executor=executor,
        workers=None,
        gpus=None,
        partition=None,
        time_min=None,
        gpus_per_node=None,
        cpus_per_task=None,
        mem_gb=None,
        wait=None,
        dry_run=False,
        retry_failed=False,
        report=True,
    )


def register(app: typer.Typer) -> None:
    """Add the experiment commands to the ``excise`` app."""
    app.command("sweep")(sweep)
    app.command("status")(status)
    app.command("report")(report)
    app.add_typer(experiments_app, name="experiments")


def main(argv: list[str] | None = None) -> None:
    """Run only these commands (``python -m excise.commands.experiments``), with the CLI's exit codes."""
    from excise.cli import exit_with

    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    exit_with(app, argv)


if __name__ == "__main__":
    main()
