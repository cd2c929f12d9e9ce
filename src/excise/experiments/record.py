"""The checksummed ``status.json`` of a run, its verified ``metrics.json``, and the state of a run
as seen from outside (no lock taken).

A run counts as done only when ``status.json`` passes its checksum, says ``done``, its
``config.yaml`` hashes to the run id and ``metrics.json`` matches the recorded sha256; anything
else is redone. Only the owner of the run's lock writes these files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from excise.experiments.layout import canonical_json, read_config
from excise.experiments.locks import LockInfo, inspect_lock
from excise.utils import atomic_write_json

STATUS_SCHEMA = 1
STATES = ("pending", "running", "done", "failed")
REQUIRED_STATUS_KEYS = ("schema", "run_id", "state", "attempt", "host", "pid", "updated_at", "checksum")

_canonical = canonical_json


def _checksum(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k != "checksum"})).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class StatusCheck:
    """The outcome of reading a run folder: its status record (if valid) and any problem found."""

    status: dict[str, Any] | None
    problem: str | None = None

    @property
    def state(self) -> str:
        """The recorded state, or pending when there is none or it cannot be trusted."""
        return self.status["state"] if self.status and not self.problem else "pending"


def read_status(run_dir: Path) -> StatusCheck:
    """Read and verify status.json (and metrics.json for a done run); corrupt files give a problem."""
    path = run_dir / "status.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if (run_dir / "metrics.json").exists():
            return StatusCheck(None, "status.json is missing although metrics.json exists (record deleted?)")
        return StatusCheck(None)
    except OSError as err:
        return StatusCheck(None, f"status.json unreadable ({err.strerror})")
    try:
        rec = json.loads(raw)
    except ValueError:
        return StatusCheck(None, "status.json is not valid JSON (half-written or corrupt)")
    if not isinstance(rec, dict):
        return StatusCheck(None, "status.json does not hold an object")
    missing = [k for k in REQUIRED_STATUS_KEYS if k not in rec]
    if missing:
        return StatusCheck(None, f"status.json lacks {', '.join(missing)}")
    if rec.get("checksum") != _checksum(rec):
        return StatusCheck(None, "status.json checksum mismatch (edited or corrupt)")
    if rec["state"] not in STATES or rec["run_id"] != run_dir.name:
        return StatusCheck(None, "status.json names another run or an unknown state")
    if rec["state"] in ("done", "failed") and read_config(run_dir) is None:
        # the result cannot be told apart from another config's: redo it
        return StatusCheck(rec, "config.yaml is missing, unreadable or does not match the run id")
    if rec["state"] == "done":
        metrics, problem = _read_metrics_checked(run_dir, rec.get("metrics_sha256"))
        if problem:
            return StatusCheck(rec, problem)
    return StatusCheck(rec)


def _read_metrics_checked(run_dir: Path, sha: str | None) -> tuple[dict[str, Any] | None, str | None]:
    try:
        raw = (run_dir / "metrics.json").read_bytes()
    except OSError:
        return None, "status says done but metrics.json is missing"
    if not sha or sha256_bytes(raw) != sha:
        return None, "metrics.json does not match the checksum in status.json (half-written or corrupt)"
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "metrics.json is not valid JSON"
    if not isinstance(data, dict):
        return None, "metrics.json does not hold an object"
    return data, None


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The verified metrics of a done run, else None."""
    check = read_status(run_dir)
    if check.problem or not check.status or check.status["state"] != "done":
        return None
    metrics, _ = _read_metrics_checked(run_dir, check.status.get("metrics_sha256"))
    return metrics


def _write_status(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    rec = {k: v for k, v in record.items() if k != "checksum"}
    rec["schema"] = STATUS_SCHEMA
    rec["updated_at"] = time.time()
    rec["checksum"] = _checksum(rec)
    atomic_write_json(run_dir / "status.json", rec)
    return rec


# ---------------------------------------------------------------- classification (no lock taken)


@dataclass
class RunState:
    """What a run folder shows right now, as seen from outside (no lock is taken)."""

    run_id: str
    state: str  # pending | running | done | failed | stale | corrupt
    status: dict[str, Any] | None
    problem: str | None = None
    lock: LockInfo | None = None


def classify(run_dir: Path) -> RunState:
    """Classify a run: done/failed/pending; running only with a live lock, else stale or corrupt."""
    check = read_status(run_dir)
    lock = inspect_lock(run_dir / "lock")
    live = lock is not None and not lock.stale
    if check.problem:
        return RunState(run_dir.name, "running" if live else "corrupt", check.status, check.problem, lock)
    st = check.state
    if st == "running" and not live:
        return RunState(run_dir.name, "stale", check.status, lock.reason if lock else "no lock", lock)
    if st == "pending" and live:
        st = "running"
    return RunState(run_dir.name, st, check.status, None, lock)
