"""Exclusive ownership of a run folder: an ``O_CREAT|O_EXCL`` lock file with a heartbeat.

A lock whose owner died (same host: pid gone; any host: no heartbeat for ``EXCISE_LOCK_STALE_S``
seconds; SLURM: an earlier incarnation of the same job) is broken under a short mutex, so two
processes never run the same run at once. A lock file is never left empty by a failed write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from excise.experiments.layout import canonical_json

log = logging.getLogger("excise.experiments.runs")

HEARTBEAT_S = float(os.environ.get("EXCISE_LOCK_HEARTBEAT_S", "20"))
STALE_AFTER_S = float(os.environ.get("EXCISE_LOCK_STALE_S", "900"))
_BREAKER_STALE_S = 30.0
# a lock file is written right after it is created; one still empty after this long lost its writer
_EMPTY_LOCK_GRACE_S = 2.0

_canonical = canonical_json


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
