"""SPD as an experiment type of the one engine: named documents, resumable seed sweeps, bad keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from excise.errors import ExciseError
from excise.experiments import ExecutorConfig, load_document, run_sweep
from excise.experiments.sweep import plan_runs
from excise.spd import list_experiments, load_config

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT = ["train.steps=150", "target.steps=300", "eval.plots=false", "eval.n_samples=512"]


def test_every_registered_spd_experiment_is_an_engine_document_with_seed_and_coefficient_sweeps() -> None:
    names = list_experiments()
    assert {"tms_5-2", "tms_40-10", "resid_mlp1", "lm"} <= set(names)
    for name in names:
        doc = load_document(f"spd-{name}")
        assert doc.experiment["type"] == "spd"
        _, seeds = plan_runs(doc, "seeds")
        assert sorted(r.config.seed for r in seeds) == list(range(10))  # type: ignore[attr-defined]
        _, coeffs = plan_runs(doc, "minimality")
        base = load_config(name).loss.importance_minimality
        got = sorted(r.config.loss.importance_minimality for r in coeffs)  # type: ignore[attr-defined]
        assert got == pytest.approx([base / 3, base, base * 3], rel=1e-2)


def test_unknown_coefficient_is_a_clear_error() -> None:
    with pytest.raises(ExciseError, match="unknown key 'loss.bogus'"):
        doc = load_document("spd-tms_5-2", ["loss.bogus=1"])
        plan_runs(doc, "seeds")


@pytest.mark.slow
def test_seed_sweep_runs_resumes_and_differs_by_seed(tmp_path: Path) -> None:
    doc = load_document("spd-tms_5-2", SHORT)
    out = tmp_path / "sweep"
    ex = ExecutorConfig(kind="inprocess")
    first = run_sweep(doc, out, mode="seeds", extra_grid={"seed": [0, 1]}, executor=ex)
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    for m in metrics:
        assert 0.0 <= m["tms.mmcs"] <= 1.0 + 1e-6 and m["timing.steps"] == 150
    assert metrics[0]["final_losses.total"] != metrics[1]["final_losses.total"]  # seeds differ
    assert all((r / "artifacts" / "model.safetensors").is_file() for r in runs)
    stamps = [(r / "metrics.json").stat().st_mtime_ns for r in runs]
    again = run_sweep(doc, out, mode="seeds", extra_grid={"seed": [0, 1]}, executor=ex)
    assert [(r / "metrics.json").stat().st_mtime_ns for r in runs] == stamps  # nothing re-run
    assert first is not None and again is not None


@pytest.mark.slow
def test_spd_run_is_the_base_point_of_the_engine_document(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "excise"
    args = [str(exe), "spd", "run", "tms_5-2", *[a for s in SHORT for a in ("--set", s)], "--out", "sw"]
    env = {**os.environ, "EXCISE_NO_PROGRESS": "1"}
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-600:]
    (run_dir,) = list((tmp_path / "sw" / "runs").iterdir())
    assert f"run folder: {Path('sw') / 'runs' / run_dir.name}" in res.stdout
    doc = load_document("spd-tms_5-2", SHORT)
    _, (planned,) = plan_runs(doc, "base")
    assert run_dir.name == planned.run_id  # the same id `excise sweep spd-tms_5-2 --mode base` gives
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    assert (run_dir / "artifacts" / "model.safetensors").is_file()
    stamp = (run_dir / "metrics.json").stat().st_mtime_ns
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and (run_dir / "metrics.json").stat().st_mtime_ns == stamp
