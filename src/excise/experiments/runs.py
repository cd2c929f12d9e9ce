"""Runs: executing one run of a sweep, claimed atomically; and the run-folder API in one place.

The run folder's pieces live in their own modules and are re-exported here:
:mod:`~excise.experiments.layout` (ids, ``config.yaml``, ``meta.json``),
:mod:`~excise.experiments.record` (checksummed ``status.json``, verified ``metrics.json``, the state
of a run seen from outside) and :mod:`~excise.experiments.locks` (lock file with heartbeat).

Layout of a run folder ``SWEEP/runs/<run_id>/``::

    config.yaml     the resolved config (its hash is the run id)
    meta.json       type, module and the sweep point that produced it (for display)
    status.json     state, attempt, host, pid, timestamps, error; with a sha256 checksum
    metrics.json    the run's metrics (its sha256 is recorded in status.json when done)
    run.log         the log of every attempt
    artifacts/      files the run writes (kept across attempts, e.g. checkpoints)
    lock            present while a process owns the run (pid, host, token; heartbeat mtime)

Only the owner of ``lock`` writes ``status.json`` or ``metrics.json``; a disk that refuses a write
stops the run (handed back, to be redone) with a one-line :class:`~excise.errors.StorageError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from excise.errors import ExciseError
from excise.experiments.layout import (  # noqa: F401 - re-exported: the run-folder API in one place
    canonical_json,
    config_dict,
    config_yaml,
    read_config,
    read_meta,
    run_id_for,
    runs_root,
    write_config,
)
from excise.experiments.locks import (  # noqa: F401 - re-exported
    HEARTBEAT_S,
    STALE_AFTER_S,
    LockInfo,
    RunLock,
    host_key,
    inspect_lock,
    pid_alive,
    slurm_job_id,
)
from excise.experiments.record import (  # noqa: F401 - re-exported
    REQUIRED_STATUS_KEYS,
    STATES,
    STATUS_SCHEMA,
    RunState,
    StatusCheck,
    _read_metrics_checked,
    _write_status,
    classify,
    read_metrics,
    read_status,
    sha256_bytes,
)
from excise.experiments.registry import get_experiment_type
from excise.utils import is_storage_error, storage_error

log = logging.getLogger(__name__)
T = TypeVar("T")

_HISTORY_MAX = 20


# ---------------------------------------------------------------- execution


@dataclass
class RunSpec:
    """Everything a worker needs to execute one run (plain data; pickles across processes)."""

    run_dir: str
    run_id: str
    type_name: str
    type_module: str
    config: dict[str, Any]
    retry_failed: bool = False
    tracking: dict[str, Any] = field(default_factory=dict)
    sweep_name: str = ""
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what workers receive)."""
        return asdict(self)


@dataclass
class RunContext:
    """Passed to a run function: where to write, a logger, the attempt number, progress bars."""

    run_id: str
    run_dir: Path
    artifacts_dir: Path
    attempt: int
    logger: logging.Logger

    def progress(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        """A tqdm bar for a loop inside the run (silent when not on a terminal)."""
        from excise.utils import progress

        return progress(iterable, desc=f"[{self.run_id[:8]}] {desc}".strip(), total=total)


OUTCOMES = ("done", "failed", "skipped-done", "skipped-failed", "skipped-busy", "interrupted")

_ACTIVE: dict[str, tuple[RunLock, dict[str, Any] | None]] = {}


def _jsonable(value: Any, key: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return _jsonable(value.item(), key)
        except (TypeError, ValueError):
            pass
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    raise ExciseError(f"metric '{key}' has a value of type {type(value).__name__}; return numbers or strings")


def normalise_metrics(metrics: Any) -> dict[str, Any]:
    """Check a run function's return value and make it plain JSON."""
    if not isinstance(metrics, Mapping):
        raise ExciseError(f"the run function must return a mapping of metrics, got {type(metrics).__name__}")
    return {str(k): _jsonable(v, str(k)) for k, v in metrics.items()}


def _error_record(err: BaseException) -> dict[str, Any]:
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    summary = "".join(tb)[-4000:]
    return {"type": type(err).__name__, "message": str(err)[:2000], "traceback": summary}


class _RunLogHandler(logging.FileHandler):
    """The run's log file; a failed write (a full disk) is dropped quietly instead of printing a
    traceback per line: the sweep reports the disk problem once, where it matters."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def _storage_cause(err: BaseException) -> OSError | None:
    """The disk error (ENOSPC, EROFS, ...) behind an exception, following its causes, if any."""
    seen = 0
    cur: BaseException | None = err
    while cur is not None and seen < 8:
        if is_storage_error(cur):
            return cur  # type: ignore[return-value]
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


@contextlib.contextmanager
def _run_logger(run_dir: Path, run_id: str) -> Iterator[logging.Logger]:
    handler = _RunLogHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger(f"excise.run.{run_id}")
    logger.setLevel(logging.INFO)
    lib = logging.getLogger("excise")
    old_level = lib.level
    if lib.level == logging.NOTSET or lib.level > logging.INFO:
        lib.setLevel(logging.INFO)
    lib.addHandler(handler)
    try:
        yield logger
    finally:
        lib.removeHandler(handler)
        lib.setLevel(old_level)
        handler.close()


def _history_entry(status: dict[str, Any] | None, note: str) -> list[dict[str, Any]]:
    if not status:
        return []
    hist = list(status.get("history") or [])
    hist.append(
        {k: status.get(k) for k in ("attempt", "state", "started_at", "finished_at", "host", "pid")}
        | {"note": note}
    )
    return hist[-_HISTORY_MAX:]


def execute_run(spec: RunSpec | Mapping[str, Any]) -> str:
    """Claim and execute one run; returns one of OUTCOMES. Never runs a run another process holds.

    A disk that refuses a write (full, read-only) raises :class:`~excise.errors.StorageError` naming
    the run folder; the run is left to be redone (its result, if any, is never half-recorded).
    """
    if not isinstance(spec, RunSpec):
        spec = RunSpec(**dict(spec))
    try:
        return _execute_run(spec)
    except OSError as err:
        raise storage_error(err, spec.run_dir) from None


def _execute_run(spec: RunSpec) -> str:
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Import the experiment type before claiming: a fresh worker's imports take seconds, and an
    # attempt should be counted only once the run function is about to start (a failing import is
    # recorded as the run's failure below, under the claim).
    with contextlib.suppress(Exception):
        get_experiment_type(spec.type_name, spec.type_module)
    pre = read_status(run_dir)
    if pre.status and not pre.problem:
        if pre.state == "done":
            tidy(run_dir)
            return "skipped-done"
        if pre.state == "failed" and not spec.retry_failed:
            return "skipped-failed"
    lock = RunLock(run_dir)
    if not lock.acquire():
        return "skipped-busy"
    _ACTIVE[spec.run_id] = (lock, None)  # from now on a pre-emption hands the run back
    try:
        check = read_status(run_dir)  # again, under the lock: another process may have finished it
        if check.status and not check.problem:
            if check.state == "done":
                return "skipped-done"
            if check.state == "failed" and not spec.retry_failed:
                return "skipped-failed"
        prev = check.status
        if check.problem:
            note = f"redone: {check.problem}"
        elif check.state == "failed":
            note = "retry after failure"
        elif check.state == "running":
            note = "resumed after interruption (owner gone)"
        elif prev and prev.get("note"):
            note = f"resumed ({prev['note']})"
        else:
            note = ""
        attempt = int(prev.get("attempt", 0)) + 1 if prev else 1
        for leftover in [run_dir / "metrics.json", *run_dir.glob(".*.tmp")]:  # a killed writer's debris
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        write_config(run_dir, spec.config)
        started = time.time()
        status: dict[str, Any] = {
            "run_id": spec.run_id,
            "type": spec.type_name,
            "state": "running",
            "attempt": attempt,
            "host": host_key(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": slurm_job_id(),
            "started_at": started,
            "finished_at": None,
            "duration_s": None,
            "error": None,
            "metrics_sha256": None,
            "note": note,
            # a pending record was handed back and already logged its attempt in the history
            "history": (
                list(prev.get("history") or [])
                if prev.get("state") == "pending" and not check.problem
                else _history_entry(prev, note)
            )
            if prev
            else [],
        }
        status = _write_status(run_dir, status)
        if spec.run_id not in _ACTIVE:  # pre-empted while claiming
            raise SystemExit("pre-empted")
        _ACTIVE[spec.run_id] = (lock, status)
        return _execute_claimed(spec, run_dir, status, started, attempt, note)
    finally:
        _ACTIVE.pop(spec.run_id, None)
        lock.release()


def _execute_claimed(
    spec: RunSpec, run_dir: Path, status: dict[str, Any], started: float, attempt: int, note: str
) -> str:
    artifacts = run_dir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with _run_logger(run_dir, spec.run_id) as logger:
        logger.info(
            "=== %s attempt %d on %s pid %d%s ===",
            spec.run_id,
            attempt,
            socket.gethostname(),
            os.getpid(),
            f" ({note})" if note else "",
        )
        try:
            etype = get_experiment_type(spec.type_name, spec.type_module)
            config = etype.config_cls.model_validate(spec.config)
            ctx = RunContext(spec.run_id, run_dir, artifacts, attempt, logger)
            metrics = normalise_metrics(etype.run_fn(config, ctx))
        except Exception as err:  # noqa: BLE001 - any failure of the run is recorded, not raised
            logger.error(
                "run failed: %s", "".join(traceback.format_exception(type(err), err, err.__traceback__))
            )
            if _ACTIVE.pop(spec.run_id, None) is None:  # handed back by a pre-emption meanwhile
                return "interrupted"
            disk = _storage_cause(err)
            if disk is not None:  # not the run's fault: hand it back to be redone, stop the sweep
                _hand_back(run_dir, status, "the disk refused a write; redo")
                raise storage_error(disk, run_dir, "during the run") from None
            now = time.time()
            _write_status(
                run_dir,
                {
                    **status,
                    "state": "failed",
                    "finished_at": now,
                    "duration_s": now - started,
                    "error": _error_record(err),
                },
            )
            return "failed"
        except BaseException as err:  # KeyboardInterrupt, SystemExit (pre-emption): leave it to redo
            logger.warning("run interrupted (%s); it will be redone", type(err).__name__)
            if _ACTIVE.pop(spec.run_id, None) is not None:
                _hand_back(run_dir, status, f"interrupted ({type(err).__name__})", "interrupted")
            raise
        # popping first makes the commit below safe from a pre-emption signal arriving meanwhile
        if _ACTIVE.pop(spec.run_id, None) is None:  # already handed back by a pre-emption checkpoint
            return "interrupted"
        blob = (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()
        from excise.utils import atomic_write_bytes

        now = time.time()
        try:
            atomic_write_bytes(run_dir / "metrics.json", blob)
            _write_status(
                run_dir,
                {
                    **status,
                    "state": "done",
                    "finished_at": now,
                    "duration_s": now - started,
                    "metrics_sha256": sha256_bytes(blob),
                },
            )
        except OSError as err:  # e.g. a full disk: the result is not recorded, the run is redone
            with contextlib.suppress(OSError):
                (run_dir / "metrics.json").unlink()
            _hand_back(run_dir, status, "its result could not be written; redo")
            raise storage_error(err, run_dir, "recording the result") from None
        logger.info("done in %.1f s: %s", now - started, _short(metrics))
        if spec.tracking:
            from excise.experiments.tracking import log_run

            try:
                log_run(spec, metrics, Path(spec.run_dir).parent.parent)
            except Exception as err:  # noqa: BLE001 - tracking is best effort once the result is safe
                logger.warning("tracking sink failed: %s", err)
        return "done"


def _hand_back(run_dir: Path, status: dict[str, Any], note: str, hist_note: str | None = None) -> None:
    """Record the run as pending (to be redone), if the disk still takes the write."""
    with contextlib.suppress(OSError):
        _write_status(
            run_dir,
            {
                **status,
                "state": "pending",
                "note": note,
                "history": _history_entry(status, hist_note or note),
            },
        )


def _short(metrics: Mapping[str, Any]) -> str:
    parts = []
    for k, v in list(metrics.items())[:8]:
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}")
    return ", ".join(parts)


def release_active_runs(note: str) -> list[str]:
    """Mark every run this process holds as pending and release its lock (used on pre-emption)."""
    released = []
    for run_id, (lock, status) in list(_ACTIVE.items()):
        _ACTIVE.pop(run_id, None)
        if status is not None:
            with contextlib.suppress(OSError):
                _write_status(
                    lock.run_dir,
                    {**status, "state": "pending", "note": note, "history": _history_entry(status, note)},
                )
        lock.release()
        released.append(run_id)
    return released


def mark_failed(run_dir: Path, spec: RunSpec, message: str) -> bool:
    """Record a failure for a run whose worker died without writing one (e.g. killed by the OOM killer)."""
    lock = RunLock(run_dir)
    if not lock.acquire():
        return False
    try:
        check = read_status(run_dir)
        if check.status and not check.problem and check.state in ("done", "failed"):
            return False
        prev = check.status or {}
        now = time.time()
        _write_status(
            run_dir,
            {
                "run_id": spec.run_id,
                "type": spec.type_name,
                "state": "failed",
                "attempt": int(prev.get("attempt", 0)) or 1,
                "host": prev.get("host", host_key()),
                "hostname": prev.get("hostname", socket.gethostname()),
                "pid": prev.get("pid", 0),
                "slurm_job_id": prev.get("slurm_job_id"),
                "started_at": prev.get("started_at"),
                "finished_at": now,
                "duration_s": (now - prev["started_at"]) if prev.get("started_at") else None,
                "error": {"type": "WorkerDied", "message": message, "traceback": ""},
                "metrics_sha256": None,
                "note": message,
                "history": list(prev.get("history") or []),
            },
        )
        return True
    finally:
        lock.release()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt so an interrupted run is handed back cleanly."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only; restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def tidy(run_dir: Path) -> None:
    """Remove what a process killed right after finishing left behind: its stale lock, temp files."""
    lock_path = run_dir / "lock"
    if lock_path.exists():
        info = inspect_lock(lock_path)
        if info is not None and info.stale:
            lock = RunLock(run_dir)
            if lock.acquire():
                lock.release()
    if not lock_path.exists():
        for leftover in run_dir.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
