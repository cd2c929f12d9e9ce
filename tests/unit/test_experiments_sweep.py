"""Sweeps in-process: resume, dry run, retry, status/ETA, reports, tracking sinks, the CLI."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from excise.errors import ExciseError
from excise.experiments import ExecutorConfig, collect, load_document, run_sweep, sweep_status, write_report
from excise.experiments.status import status_lines
from excise.experiments.types.quadratic import closed_form

INPROC = ExecutorConfig(kind="inprocess")


def _doc(tmp_path: Path, *sets: str) -> Any:
    return load_document("quadratic", [f"marker_dir={tmp_path / 'markers'}", *sets])


def _markers(tmp_path: Path) -> dict[str, int]:
    d = tmp_path / "markers"
    return {f.stem: len(f.read_text().splitlines()) for f in d.glob("*.txt")} if d.exists() else {}


def test_sweep_runs_every_point_once_and_resumes_as_a_no_op(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    res = run_sweep(doc, tmp_path / "sw", executor=INPROC)
    assert res.mode == "grid" and res.planned == 12 and res.states["done"] == 12 and res.ok
    assert res.outcomes["done"] == 12
    again = run_sweep(doc, tmp_path / "sw", executor=INPROC)
    assert again.outcomes == {"skipped-done": 12} or sum(again.outcomes.values()) == 0
    assert set(_markers(tmp_path).values()) == {1} and len(_markers(tmp_path)) == 12
    df = collect(tmp_path / "sw").frame
    assert len(df) == 12 and df["run_id"].is_unique
    for _, row in df.iterrows():
        assert row["exact"] == pytest.approx(closed_form(row["x"], row["y"]))


def test_dry_run_shows_done_and_pending_and_runs_nothing(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    lines: list[str] = []
    run_sweep(doc, tmp_path / "sw", mode="grid", executor=INPROC, dry_run=True, echo=lines.append)
    text = "\n".join(lines)
    assert lines[0].startswith("12 runs")
    assert text.count("skip (done)") == 2  # (1, -2) and (0, 0) are in both modes
    assert text.count("-> run") == 10
    assert "executor: in-process" in text
    assert sum(_markers(tmp_path).values()) == 3


def test_failed_runs_are_kept_until_retry_failed(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "fail_attempts=1")
    res = run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    assert res.states == {"failed": 3} and not res.ok
    res = run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    assert res.states == {"failed": 3} and sum(res.outcomes.values()) == 0
    lines: list[str] = []
    run_sweep(
        doc,
        tmp_path / "sw",
        mode="points",
        executor=INPROC,
        retry_failed=True,
        dry_run=True,
        echo=lines.append,
    )
    assert "\n".join(lines).count("retry (failed)") == 3
    res = run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC, retry_failed=True)
    assert res.states == {"done": 3}
    assert set(_markers(tmp_path).values()) == {2}


def test_status_counts_time_per_run_and_eta(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "sleep_s=0.02")
    run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    run_sweep(doc, tmp_path / "sw", mode="grid", executor=INPROC, dry_run=True)
    from excise.experiments.sweep import plan_runs, prepare_sweep_dir

    mode, planned = plan_runs(doc, "grid")
    prepare_sweep_dir(tmp_path / "sw", doc, mode, planned)  # planned but not started: pending
    st = sweep_status(tmp_path / "sw")
    assert st.total == 13 and st.counts["done"] == 3 and st.counts["pending"] == 10
    assert st.eta_s is not None and st.eta_s > 0 and not st.finished
    text = "\n".join(status_lines(st, show_runs=True))
    assert "done 3" in text and "pending 10" in text and "ETA" in text and "time per run" in text
    with pytest.raises(ExciseError, match="not a sweep folder"):
        sweep_status(tmp_path / "nothing")


def test_report_table_plots_and_html(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "noise=0.1")
    run_sweep(doc, tmp_path / "sw", executor=INPROC)
    bad = _doc(tmp_path, "fail=true")
    run_sweep(bad, tmp_path / "sw", mode="points", executor=INPROC)
    rep = write_report(tmp_path / "sw")
    import pandas as pd

    csv = pd.read_csv(rep.csv)
    pq = pd.read_parquet(rep.parquet)
    assert len(csv) == len(pq) == 15 and csv["run_id"].is_unique
    assert (csv["state"] == "failed").sum() == 3 and (csv["state"] == "done").sum() == 12
    assert {"x", "y", "loss", "exact", "attempt", "duration_s", "error"} <= set(csv.columns)
    assert csv.loc[csv["state"] == "failed", "error"].str.contains("RuntimeError").all()
    assert len(rep.figures) == 1 and rep.figures[0].path.is_file() and not rep.warnings
    html = rep.html.read_text()
    assert "<table class='results' id='results'>" in html and html.count("<tr") == 16
    assert "plots/quadratic_loss.png" in html and "Failures" in html


def test_safety_neurons_type_calls_the_pipeline_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def safety_study(cfg: Any, **kw: Any) -> dict[str, Any]:
        calls.append({"cfg": cfg, **kw})
        p, q = cfg.p, cfg.q
        row = {"asr": 0.5, "removed": q * (1 - p), "benign_accuracy": 1 - p / 2, "perplexity": 3.0 + q}
        return {
            "model": cfg.model,
            "method": cfg.method,
            "p": p,
            "q": q,
            "asr": min(1.0, q * 8 / (1 + p)),
            "benign_accuracy": 1 - p / 2,
            "perplexity": 3.0 + q,
            "removed": q * (1 - p),
            "rows": {"set_difference": {**row, "examples": {"harmful": [{"prompt": "x"}]}}},
        }

    monkeypatch.setattr("excise.pipeline.safety_study", safety_study)
    doc = load_document("safety-neurons", ["n_safety=8", "eval.limit=5", "method=wanda"])
    res = run_sweep(doc, tmp_path / "sn", mode="predefined", executor=INPROC)
    assert res.states["done"] == res.planned == len(calls)
    c = calls[0]["cfg"]
    assert c.model == "organism" and c.method == "wanda" and c.n_safety == 8 and c.n_utility == 128
    assert c.eval.limit == 5 and c.rows == ("set_difference",) and c.scope == "matrix"
    # each run's artifacts hold the study's report (the same writer as the demo's)
    tables = sorted((tmp_path / "sn").rglob("table.txt"))
    assert len(tables) == res.planned
    assert "set difference (p=" in tables[0].read_text()
    rep = write_report(tmp_path / "sn")
    assert not rep.warnings
    assert [f.path.name for f in rep.figures] == [
        "safety_asr_vs_utility.png",
        "safety_asr_heatmap.png",
        "safety_removed_vs_asr.png",
    ]
    df = collect(tmp_path / "sn").frame
    assert {
        "asr",
        "benign_accuracy",
        "weights_removed_pct",
        "rows.set_difference.asr",
        "p",
        "q",
        "eval.limit",
    } <= set(df.columns)
    assert not any("examples" in col for col in df.columns)
    assert (df["weights_removed_pct"] == 100 * df["removed"]).all()


def test_tracking_sinks_receive_each_finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logged: dict[str, list[Any]] = {"wandb": [], "mlflow": []}

    class _Run:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw
            self.summary: dict[str, Any] = {}

        def log(self, vals: dict[str, float]) -> None:
            logged["wandb"].append((self.kw, vals))

        def finish(self) -> None:
            pass

    wandb = types.ModuleType("wandb")
    wandb.init = lambda **kw: _Run(**kw)  # type: ignore[attr-defined]
    mlflow = types.ModuleType("mlflow")
    state: dict[str, Any] = {}

    class _Ctx:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *a: Any) -> None:
            logged["mlflow"].append(dict(state))

    mlflow.set_tracking_uri = lambda uri: state.update(uri=uri)  # type: ignore[attr-defined]
    mlflow.set_experiment = lambda name: state.update(experiment=name)  # type: ignore[attr-defined]
    mlflow.start_run = lambda **kw: (state.update(run=kw), _Ctx())[1]  # type: ignore[attr-defined]
    mlflow.log_params = lambda p: state.update(params=p)  # type: ignore[attr-defined]
    mlflow.log_metrics = lambda m: state.update(metrics=m)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: object() if n in ("wandb", "mlflow") else real_find_spec(n, *a),
    )
    doc = _doc(tmp_path, "tracking.wandb.enabled=true", "tracking.mlflow.enabled=true")
    res = run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    assert res.states == {"done": 3}
    assert len(logged["wandb"]) == 3 and len(logged["mlflow"]) == 3
    kw, vals = logged["wandb"][0]
    assert kw["mode"] == "offline" and kw["group"] == "quadratic" and "loss" in vals and "x" in kw["config"]
    m = logged["mlflow"][0]
    assert m["uri"].startswith("file:") and m["uri"].endswith("/sw/mlruns") and "loss" in m["metrics"]


def test_enabled_sink_that_is_not_installed_fails_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real_find_spec(n, *a)
    )
    doc = _doc(tmp_path, "tracking.mlflow.enabled=true")
    with pytest.raises(ExciseError, match="mlflow.*not installed"):
        run_sweep(doc, tmp_path / "sw", mode="points", executor=INPROC)
    assert _markers(tmp_path) == {}


def _app() -> typer.Typer:
    from excise.commands.experiments import register

    app = typer.Typer()
    register(app)
    return app


def test_cli_sweep_status_report_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    out = tmp_path / "sw"
    base = [
        "sweep",
        "quadratic",
        "--mode",
        "points",
        "--out",
        str(out),
        "--executor",
        "inprocess",
        "--set",
        f"marker_dir={tmp_path / 'markers'}",
    ]
    r = runner.invoke(app, [*base, "--dry-run"])
    assert r.exit_code == 0 and "3 runs" in r.output and r.output.count("-> run") == 3
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    assert "3/3 done" in r.output and "report:" in r.output
    r = runner.invoke(app, ["status", str(out), "--runs"])
    assert r.exit_code == 0 and "done 3" in r.output and "finished" in r.output
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0 and "3 runs" in r.output and "index.html" in r.output
    r = runner.invoke(app, [*base, "--set", "fail=true", "--grid", "seed=5"])
    assert r.exit_code == 1 and "3 failed" in r.output
    r = runner.invoke(app, ["sweep", "quadratic", "--set", "xx=1", "--dry-run"])
    assert r.exit_code != 0 and "unknown key 'xx'" in str(r.exception)
    r = runner.invoke(app, ["experiments", "list"])
    assert r.exit_code == 0 and "safety-neurons" in r.output and "grid (35 runs)" in r.output
    r = runner.invoke(
        app, ["experiments", "show", "safety-neurons", "--set", "p=0.3", "--mode", "predefined"]
    )
    assert r.exit_code == 0 and "p: 0.3" in r.output and "# mode predefined: 10 runs" in r.output
    meta = json.loads(next((out / "runs").glob("*/meta.json")).read_text())
    assert meta["type"] == "quadratic" and meta["label"]


def test_the_excise_command_mounts_the_experiment_commands() -> None:
    from excise.cli import _mount_subapps, app

    _mount_subapps()
    runner = CliRunner()
    for cmd in (
        ["sweep", "--help"],
        ["status", "--help"],
        ["report", "--help"],
        ["experiments", "list", "--help"],
    ):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0, (cmd, r.output)
    r = runner.invoke(app, ["sweep", "--help"])
    for flag in ("--mode", "--out", "--set", "--executor", "--workers", "--dry-run", "--retry-failed"):
        assert flag in r.output
