"""Runs: status with checksum, corrupt files redone, failures recorded, atomic claims, stale locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from excise.experiments import parse_experiment_config, run_id_for
from excise.experiments.runs import (
    RunLock,
    RunSpec,
    classify,
    execute_run,
    host_key,
    inspect_lock,
    read_metrics,
    read_status,
)
from excise.experiments.types.quadratic import closed_form


def _spec(tmp_path: Path, **fields: Any) -> RunSpec:
    cfg = parse_experiment_config({"type": "quadratic", "marker_dir": str(tmp_path / "markers"), **fields})
    rid = run_id_for(cfg)
    return RunSpec(
        run_dir=str(tmp_path / "runs" / rid),
        run_id=rid,
        type_name="quadratic",
        type_module="excise.experiments.types.quadratic",
        config=cfg.model_dump(mode="json"),
    )


def _executions(spec: RunSpec) -> int:
    f = Path(spec.config["marker_dir"]) / f"{spec.run_id}.txt"
    return len(f.read_text().splitlines()) if f.exists() else 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_writes_config_status_metrics_and_log(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=2.0, y=1.0)
    assert execute_run(spec) == "done"
    run_dir = Path(spec.run_dir)
    for name in ("config.yaml", "status.json", "metrics.json", "run.log", "artifacts/loss.txt"):
        assert (run_dir / name).is_file(), name
    st = read_status(run_dir)
    assert st.problem is None and st.status is not None
    s = st.status
    assert s["state"] == "done" and s["attempt"] == 1 and s["pid"] == os.getpid() and s["duration_s"] >= 0
    assert s["host"] == host_key() and s["finished_at"] >= s["started_at"]
    metrics = read_metrics(run_dir)
    assert metrics is not None and metrics["exact"] == pytest.approx(closed_form(2.0, 1.0))
    assert not (run_dir / "lock").exists()
    # a second call skips: never duplicates a finished result
    assert execute_run(spec) == "skipped-done"
    assert _executions(spec) == 1


@pytest.mark.parametrize(
    "damage",
    [
        "truncate-status",
        "garbage-status",
        "edit-status",
        "drop-key",
        "truncate-metrics",
        "edit-metrics",
        "delete-metrics",
    ],
)
def test_corrupt_status_or_metrics_is_detected_and_redone(tmp_path: Path, damage: str) -> None:
    spec = _spec(tmp_path, x=0.5, y=0.5, noise=0.3)
    assert execute_run(spec) == "done"
    run_dir = Path(spec.run_dir)
    good = read_metrics(run_dir)
    status_f, metrics_f = run_dir / "status.json", run_dir / "metrics.json"
    if damage == "truncate-status":
        status_f.write_bytes(status_f.read_bytes()[: len(status_f.read_bytes()) // 2])
    elif damage == "garbage-status":
        status_f.write_bytes(b"\x00\x00\x00")
    elif damage == "edit-status":
        s = json.loads(status_f.read_text())
        s["attempt"] = 7
        status_f.write_text(json.dumps(s))
    elif damage == "drop-key":
        s = json.loads(status_f.read_text())
        del s["state"]
        status_f.write_text(json.dumps(s))
    elif damage == "truncate-metrics":
        metrics_f.write_bytes(metrics_f.read_bytes()[:10])
    elif damage == "edit-metrics":
        m = json.loads(metrics_f.read_text())
        m["loss"] = 0.0
        metrics_f.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    else:
        metrics_f.unlink()
    state = classify(run_dir)
    assert state.state == "corrupt" and state.problem
    assert read_metrics(run_dir) is None
    assert execute_run(spec) == "done"
    assert _executions(spec) == 2
    assert read_metrics(run_dir) == good
    assert classify(run_dir).state == "done"


def test_failure_is_recorded_and_retried_only_when_asked(tmp_path: Path) -> None:
    spec = _spec(tmp_path, fail_attempts=1)
    assert execute_run(spec) == "failed"
    s = read_status(Path(spec.run_dir)).status
    assert s is not None and s["state"] == "failed"
    assert s["error"]["type"] == "RuntimeError" and "asked to fail" in s["error"]["message"]
    assert "Traceback" in s["error"]["traceback"] and "run_quadratic" in s["error"]["traceback"]
    assert not (Path(spec.run_dir) / "metrics.json").exists()
    assert execute_run(spec) == "skipped-failed"
    spec.retry_failed = True
    assert execute_run(spec) == "done"
    s = read_status(Path(spec.run_dir)).status
    assert s is not None and s["attempt"] == 2 and s["history"][-1]["state"] == "failed"
    assert _executions(spec) == 2


def test_bad_metrics_fail_the_run_with_a_clear_error(tmp_path: Path) -> None:
    from excise.experiments.runs import normalise_metrics

    assert normalise_metrics({"a": 1, "b": {"c": 2.5}}) == {"a": 1, "b": {"c": 2.5}}
    with pytest.raises(Exception, match="metric 'o'"):
        normalise_metrics({"o": object()})
    with pytest.raises(Exception, match="mapping"):
        normalise_metrics([1, 2])


def _leave_running(spec: RunSpec, owner: dict[str, Any] | None, age_s: float = 0.0) -> None:
    """Make the folder look like a process died mid-run: running status and its lock left behind."""
    from excise.experiments.runs import _write_status

    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pid = owner["pid"] if owner else 0
    _write_status(
        run_dir,
        {
            "run_id": spec.run_id,
            "state": "running",
            "attempt": 1,
            "host": host_key(),
            "pid": pid,
            "started_at": time.time() - 5,
        },
    )
    lock = run_dir / "lock"
    lock.write_text(json.dumps(owner) if owner else "")
    if age_s:
        t = time.time() - age_s
        os.utime(lock, (t, t))


def test_kill9_leftovers_dead_owner_on_this_host_is_stale_and_redone(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=1.0)
    _leave_running(spec, {"pid": _dead_pid(), "host": host_key(), "token": "old"})
    st = classify(Path(spec.run_dir))
    assert st.state == "stale" and "gone" in (st.problem or "")
    assert execute_run(spec) == "done"
    s = read_status(Path(spec.run_dir)).status
    assert s is not None and s["attempt"] == 2 and "interruption" in s["note"]


def test_live_owner_is_respected(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=1.0)
    other = RunLock(Path(spec.run_dir))
    assert other.acquire()
    try:
        assert classify(Path(spec.run_dir)).state in ("pending", "running")
        assert execute_run(spec) == "skipped-busy"
        assert _executions(spec) == 0
    finally:
        other.release()
    assert execute_run(spec) == "done"


def test_other_host_lock_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=1.0)
    owner = {"pid": 1, "host": "node-17:4026531836", "token": "t"}
    _leave_running(spec, owner)
    assert execute_run(spec) == "skipped-busy"  # fresh heartbeat: maybe alive on another node
    _leave_running(spec, owner, age_s=10_000)
    info = inspect_lock(Path(spec.run_dir) / "lock")
    assert info is not None and info.stale and "heartbeat" in info.reason
    assert execute_run(spec) == "done"


def test_half_written_lock_is_busy_while_young_and_broken_when_old(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=1.0)
    _leave_running(spec, None)
    assert execute_run(spec) == "skipped-busy"
    _leave_running(spec, None, age_s=120)
    assert execute_run(spec) == "done"


def test_release_removes_only_its_own_lock(tmp_path: Path) -> None:
    a = RunLock(tmp_path / "r")
    assert a.acquire()
    (tmp_path / "r" / "lock").write_text(
        json.dumps({"pid": os.getpid(), "host": host_key(), "token": "theirs"})
    )
    a.release()
    assert (tmp_path / "r" / "lock").exists()


def test_heartbeat_keeps_a_long_run_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import excise.experiments.locks as locks  # the lock and its heartbeat live there (runs re-exports)

    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    lock = RunLock(tmp_path / "r")
    assert lock.acquire()
    try:
        t = time.time() - 1000
        os.utime(lock.path, (t, t))
        time.sleep(0.3)
        info = inspect_lock(lock.path, stale_after_s=100)
        assert info is not None and not info.stale and info.age_s < 10
    finally:
        lock.release()


def test_concurrent_claims_execute_a_run_once(tmp_path: Path) -> None:
    spec = _spec(tmp_path, x=3.0, sleep_s=0.3)
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(execute_run(spec))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("done") == 1
    assert set(outcomes) <= {"done", "skipped-busy", "skipped-done"}
    assert _executions(spec) == 1


def test_lock_of_an_earlier_incarnation_of_this_slurm_job_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path, x=1.0)
    _leave_running(spec, {"pid": 4, "host": "node-3:1", "token": "t", "slurm_job_id": "77_1"})
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert execute_run(spec) == "skipped-busy"  # another job's lock, fresh heartbeat
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")  # the same job, requeued on another node
    assert execute_run(spec) == "done"
    s = read_status(Path(spec.run_dir)).status
    assert s is not None and s["slurm_job_id"] == "77_1" and s["attempt"] == 2
