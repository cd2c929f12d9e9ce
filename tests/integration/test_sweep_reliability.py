"""Sweeps under abuse: SIGKILL of the whole sweep, of one worker, and two sweeps on one folder at once.

Each test runs the real command (``python -m excise.commands.experiments sweep ...``) in subprocesses
with the cheap ``quadratic`` type, and counts executions with the marker files it appends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from excise.experiments import ExecutorConfig, collect, load_document, run_sweep
from excise.experiments.runs import classify, read_metrics, read_status, runs_root

pytestmark = pytest.mark.slow


def _write_doc(tmp_path: Path, **exp: Any) -> Path:
    doc = {
        "name": "quad-test",
        "experiment": {
            "type": "quadratic",
            "noise": 0.5,
            "seed": 7,
            "marker_dir": str(tmp_path / "markers"),
            **exp,
        },
        "sweeps": {
            "grid": {"grid": {"x": [-1.0, 0.0, 1.0, 2.0], "y": [-3.0, -2.0, 0.0]}},
            "small": {"points": [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}, {"x": 3.0}]},
        },
        "default_sweep": "grid",
    }
    path = tmp_path / "quad-test.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _sweep_cmd(doc: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "excise.commands.experiments",
        "sweep",
        str(doc),
        "--out",
        str(out),
        "--no-report",
        *extra,
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, EXCISE_NO_PROGRESS="1", PYTHONUNBUFFERED="1")


def _markers(tmp_path: Path) -> dict[str, int]:
    d = tmp_path / "markers"
    return {f.stem: len(f.read_text().splitlines()) for f in d.glob("*.txt")} if d.exists() else {}


def _states(out: Path) -> dict[str, str]:
    root = runs_root(out)
    return {d.name: classify(d).state for d in root.iterdir()} if root.is_dir() else {}


def _wait_until(pred: Any, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.time() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"sweep exited early with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _by_point(out: Path) -> dict[tuple[float, float], dict[str, Any]]:
    df = collect(out).frame
    assert df["run_id"].is_unique
    return {
        (r["x"], r["y"]): {"loss": r["loss"], "exact": r["exact"], "state": r["state"]}
        for _, r in df.iterrows()
    }


def test_sigkill_of_the_whole_sweep_then_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    doc_path = _write_doc(tmp_path, sleep_s=0.3)
    reference = tmp_path / "reference"
    run_sweep(load_document(str(doc_path)), reference, executor=ExecutorConfig(kind="inprocess"))
    ref = _by_point(reference)
    ref_markers = _markers(tmp_path)
    for f in (tmp_path / "markers").glob("*.txt"):
        f.unlink()

    out = tmp_path / "sw"
    cmd = _sweep_cmd(
        doc_path, out, "--executor", "local", "--workers", "2", "--set", "executor.max_runs_per_worker=null"
    )
    proc = subprocess.Popen(
        cmd, env=_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_until(lambda: list(_states(out).values()).count("done") >= 3, 120, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep process and its workers, mid-run
    proc.wait()
    time.sleep(0.2)
    before = _states(out)
    done_before = {rid for rid, s in before.items() if s == "done"}
    metrics_before = {rid: read_metrics(runs_root(out) / rid) for rid in done_before}
    assert 3 <= len(done_before) < 12, before
    assert len(before) == 12

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "12/12 done" in again.stdout
    after = _by_point(out)
    assert set(after) == set(ref) and len(after) == 12
    for point, row in after.items():
        assert row["state"] == "done"
        assert row["loss"] == ref[point]["loss"] and row["exact"] == ref[point]["exact"]
    markers = _markers(tmp_path)
    assert set(markers) == set(ref_markers) == set(_states(out))
    for rid in done_before:  # finished before the kill: kept as they were, never run again
        assert markers[rid] == 1
        assert read_metrics(runs_root(out) / rid) == metrics_before[rid]
    for rid in set(markers) - done_before:
        st = read_status(runs_root(out) / rid).status
        assert st is not None and st["attempt"] == markers[rid]
    assert not list(out.glob("runs/*/lock")) and not list(out.glob("runs/*/.*.tmp"))


def test_sigkill_of_one_worker_is_retried_by_the_pool(tmp_path: Path) -> None:
    """Also: with GPUs, each worker sees only its own (CUDA_VISIBLE_DEVICES), recorded by the markers."""
    doc_path = _write_doc(tmp_path, sleep_s=2.5, sleep_attempts=1)
    out = tmp_path / "sw"
    cmd = _sweep_cmd(
        doc_path,
        out,
        "--mode",
        "small",
        "--executor",
        "local",
        "--gpus",
        "3,5",
        "--set",
        "executor.max_runs_per_worker=null",
    )
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def running() -> list[tuple[str, int]]:
        found = []
        for rid, s in _states(out).items():
            st = read_status(runs_root(out) / rid).status
            if s == "running" and st and st["pid"] != proc.pid and _markers(tmp_path).get(rid):
                found.append((rid, st["pid"]))
        return found

    _wait_until(lambda: bool(running()), 120, proc)
    victim, pid = running()[0]
    os.kill(pid, signal.SIGKILL)
    text, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, text
    assert "crashed" in text and "4/4 done" in text
    markers = _markers(tmp_path)
    assert markers[victim] == 2 and all(n == 1 for rid, n in markers.items() if rid != victim)
    st = read_status(runs_root(out) / victim).status
    assert st is not None and st["attempt"] == 2 and st["state"] == "done"
    lines = [ln.split() for f in (tmp_path / "markers").glob("*.txt") for ln in f.read_text().splitlines()]
    gpu_of_pid = {}
    for ln in lines:
        gpu_of_pid.setdefault(ln[1], set()).add(ln[3])
    assert all(len(g) == 1 for g in gpu_of_pid.values())  # a worker keeps its one GPU
    assert set().union(*gpu_of_pid.values()) <= {"cuda=3", "cuda=5"}
    assert "GPUs 3,5" in text


def test_two_sweeps_on_one_folder_never_run_a_run_twice(tmp_path: Path) -> None:
    doc_path = _write_doc(tmp_path, sleep_s=0.3)
    out = tmp_path / "sw"
    cmd = _sweep_cmd(doc_path, out, "--executor", "inprocess")
    procs = [
        subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    texts = [p.communicate(timeout=180)[0] for p in procs]
    for p, text in zip(procs, texts, strict=True):
        assert p.returncode == 0, text
        assert "12/12 done" in text
    markers = _markers(tmp_path)
    assert len(markers) == 12 and set(markers.values()) == {1}, markers
    ran = [sum(line.startswith("done ") for line in t.splitlines()) for t in texts]
    print("runs executed by each sweep:", ran)
    assert sum(ran) == 12  # the work was split, not repeated
    assert len(collect(out).frame) == 12
