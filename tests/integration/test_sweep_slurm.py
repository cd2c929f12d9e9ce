"""Pre-emption through submitit's real signal handling: the job gets USR2 mid-run, checkpoints, requeues, finishes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from excise.experiments import load_document, run_sweep
from excise.experiments.runs import classify, read_status

pytestmark = pytest.mark.slow


def test_preempted_job_is_requeued_and_its_run_finishes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXCISE_NO_PROGRESS", "1")
    markers = tmp_path / "m"
    doc = load_document(
        "quadratic",
        [
            f"marker_dir={markers}",
            "sleep_s=60",
            "sleep_attempts=1",
            "executor.kind=slurm",
            "executor.slurm.cluster=local",
            "executor.slurm.gpus_per_node=0",
            "executor.slurm.time_min=5",
        ],
    )
    res = run_sweep(doc, tmp_path / "sw", mode="base")
    assert len(res.submitted_jobs) == 1
    run_dir = next((tmp_path / "sw" / "runs").iterdir())
    marker = markers / f"{run_dir.name}.txt"
    deadline = time.time() + 120
    while not (classify(run_dir).state == "running" and marker.exists()):
        assert time.time() < deadline, "the job never started"
        time.sleep(0.1)
    st = read_status(run_dir).status
    assert st is not None
    os.kill(st["pid"], signal.SIGUSR2)  # what SLURM sends before pre-empting (submitit's USR2@delay)
    while classify(run_dir).state != "done":
        assert time.time() < deadline + 60, classify(run_dir)
        time.sleep(0.1)
    st = read_status(run_dir).status
    assert st is not None and st["attempt"] == 2
    assert [h["note"] for h in st["history"]] == ["pre-empted or timed out; requeued"]
    assert st["note"].startswith("resumed (pre-empted")
    assert len(marker.read_text().splitlines()) == 2
    logs = "".join(p.read_text() for p in (tmp_path / "sw" / "slurm").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs
