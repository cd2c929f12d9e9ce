"""Runs: deterministic ids, one folder per run, checksummed status, atomic claims, execution.

Layout of a run folder ``SWEEP/runs/<run_id>/``::

    config.yaml     the resolved config (its hash is the run id)
    meta.json       type, module and the sweep point that produced it (for display)
    status.json     state, attempt, host, pid, timestamps, error; with a sha256 checksum
    metrics.json    the run's metrics (its sha256 is recorded in status.json when done)
    run.log         the log of every attempt
    artifacts/      files the run writes (kept across attempts, e.g. checkpoints)
    lock            present while a process owns the run (pid, host, token; heartbeat mtime)

Only the owner of ``lock`` writes ``status.json`` or ``metrics.json``. A run counts as done only
when ``status.json`` passes its checksum, says ``done`` and ``metrics.json`` matches the recorded
sha256; anything else is redone. A lock whose owner died (same host: pid gone; any host: no
heartbeat for ``EXCISE_LOCK_STALE_S`` seconds) is broken under a short mutex, so two processes
never run the same run at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from excise.errors import ExciseError
from excise.experiments.registry import ExperimentConfig, get_experiment_type
from excise.utils import atomic_write_json, atomic_write_text, is_storage_error, stable_hash, storage_error

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_SCHEMA = 1
STATES = ("pending", "running", "done", "failed")
REQUIRED_STATUS_KEYS = ("schema", "run_id", "state", "attempt", "host", "pid", "updated_at", "checksum")
HEARTBEAT_S = float(os.environ.get("EXCISE_LOCK_HEARTBEAT_S", "20"))
STALE_AFTER_S = float(os.environ.get("EXCISE_LOCK_STALE_S", "900"))
_BREAKER_STALE_S = 30.0
# a lock file is written right after it is created; one still empty after this long lost its writer
_EMPTY_LOCK_GRACE_S = 2.0
_HISTORY_MAX = 20


# ---------------------------------------------------------------- ids and folders


def config_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain JSON data (what the run id hashes)."""
    return config.model_dump(mode="json")


def run_id_for(config: ExperimentConfig | Mapping[str, Any]) -> str:
    """Deterministic run id: sha256 of the resolved config (16 hex digits)."""
    data = config_dict(config) if isinstance(config, ExperimentConfig) else dict(config)
    return stable_hash(data, length=16)


def runs_root(sweep_dir: Path) -> Path:
    """The folder holding one sub-folder per run."""
    return Path(sweep_dir) / "runs"


def config_yaml(config: Mapping[str, Any]) -> str:
    """The canonical YAML text of a resolved config."""
    return yaml.safe_dump(dict(config), sort_keys=True)


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Write config.yaml unless an identical one is already there."""
    path = run_dir / "config.yaml"
    text = config_yaml(config)
    with contextlib.suppress(OSError, ValueError):  # unreadable (e.g. not UTF-8): rewrite it
        if path.read_text(encoding="utf-8") == text:
            return
    atomic_write_text(path, text)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.yaml if it parses and hashes to the folder name, else None."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: a byte that is not UTF-8
        return None
    if not isinstance(data, dict) or run_id_for(data) != run_dir.name:
        return None
    return data


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's meta.json (type, label, sweep point), or {} if missing or unreadable."""
    try:
        data = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- status with checksum


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


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


# ---------------------------------------------------------------- process identity and liveness


def host_key() -> str:
    """Hostname plus pid-namespace id: two processes share pids only if their host keys agree."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}:{ns}"


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (zombies and reused pids count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        return True
    return not (start_time is not None and _proc_start_time(pid) not in (None, start_time))


def slurm_job_id() -> str | None:
    """The SLURM job id of this process (array-aware), if any."""
    arr, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if arr and task:
        return f"{arr}_{task}"
    return os.environ.get("SLURM_JOB_ID")


# ---------------------------------------------------------------- locks


@dataclass
class LockInfo:
    """What a lock file says about its owner, and how old its heartbeat is."""

    owner: dict[str, Any] | None
    age_s: float
    stale: bool
    reason: str


def inspect_lock(path: Path, stale_after_s: float | None = None) -> LockInfo | None:
    """Read a lock file and judge whether its owner is gone; None if there is no lock."""
    stale_after = STALE_AFTER_S if stale_after_s is None else stale_after_s
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    age = max(0.0, time.time() - st.st_mtime)
    try:
        owner = json.loads(raw)
        if not isinstance(owner, dict) or "pid" not in owner or "token" not in owner:
            raise ValueError
    except ValueError:
        # created but never written: its creator died between open and write (or the disk was full)
        return LockInfo(None, age, age > _EMPTY_LOCK_GRACE_S, "empty or unreadable lock file")
    if owner.get("host") == host_key() and not pid_alive(int(owner["pid"]), owner.get("pid_start")):
        return LockInfo(owner, age, True, f"owner pid {owner['pid']} is gone")
    job = slurm_job_id()
    if job and owner.get("slurm_job_id") == job and int(owner["pid"]) != os.getpid():
        # SLURM requeued this very job: its earlier incarnation is dead, wherever it ran
        return LockInfo(owner, age, True, f"left by an earlier run of job {job}")
    if age > stale_after:
        return LockInfo(owner, age, True, f"no heartbeat for {age:.0f} s")
    return LockInfo(owner, age, False, "owner alive")


def _try_create(path: Path, data: bytes) -> bool:
    """Create ``path`` exclusively holding ``data``; False if it exists. A failed write (a full disk)
    removes the file again, so no empty file is left for others to wait on, and re-raises."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)
    return True


@contextlib.contextmanager
def _breaker(run_dir: Path, wait_s: float = 10.0) -> Iterator[bool]:
    """A short-lived mutex (O_EXCL file) guarding lock take-over and release (False: not obtained)."""
    path = run_dir / "lock.break"
    deadline = time.monotonic() + wait_s
    got = False
    while True:
        try:
            got = _try_create(path, f"{os.getpid()}@{host_key()}".encode())
        except OSError:  # the disk refuses writes: no mutex
            break
        if got:
            break
        try:
            if time.time() - path.stat().st_mtime > _BREAKER_STALE_S:
                path.unlink()
                continue
        except FileNotFoundError:
            continue
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    try:
        yield got
    finally:
        if got:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class RunLock:
    """Exclusive ownership of one run folder: an O_CREAT|O_EXCL lock file with a heartbeat."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "lock"
        self.token = uuid.uuid4().hex
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _owner(self) -> dict[str, Any]:
        pid = os.getpid()
        return {
            "pid": pid,
            "pid_start": _proc_start_time(pid),
            "host": host_key(),
            "token": self.token,
            "slurm_job_id": slurm_job_id(),
            "created_at": time.time(),
        }

    def _create(self) -> bool:
        return _try_create(self.path, _canonical(self._owner()))

    def acquire(self) -> bool:
        """Take the lock, breaking it if its owner is gone; False if a live owner holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                self._start_heartbeat()
                return True
            info = inspect_lock(self.path)
            if info is None:
                continue
            if not info.stale:
                return False
            with _breaker(self.run_dir) as got:
                if not got:
                    return False
                again = inspect_lock(self.path)
                # break only the very lock judged stale (same token, still stale)
                if (
                    again is not None
                    and again.stale
                    and (again.owner or {}).get("token") == (info.owner or {}).get("token")
                ):
                    log.info("breaking stale lock of %s: %s", self.run_dir.name, again.reason)
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
        return False

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._thread = threading.Thread(
            target=beat, name=f"excise-heartbeat-{self.run_dir.name}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        if not self.held:
            return
        self.held = False
        self._stop.set()
        with _breaker(self.run_dir):
            try:
                owner = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                return
            if isinstance(owner, dict) and owner.get("token") == self.token:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()


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
