"""The one CPU thread policy of excise, and its override ``EXCISE_THREADS``.

Every place that runs torch on the CPU (demo, organism and SmolLM2 training, the safety study, SPD,
experiment workers, the tests) asks ``auto_threads()`` how many intra-op threads to use:

- ``$EXCISE_THREADS`` when set (a whole number >= 1): always wins;
- else **1 thread on a machine with 2 cores or fewer** (except ``gemm_heavy`` work started on a
  quiet machine, which takes every core; see ``auto_threads``): there, two threads spin-wait whenever
  another job takes a core (the cached demo beside two busy jobs: stopped at 150 s with 2 threads,
  108 s with 1), and even ahead of the machine's other work they were not faster (58 s vs 52 s);
  OpenMP's passive wait policy helps beside busy jobs (69 s) but costs 85% when they are gone (96 s),
  and it must be set before OpenMP loads, so it is not used;
- else the cores the load average leaves free (at least 1, at most all of them), divided among
  ``workers`` parallel workers.

Measurements behind the rule: ``benchmarks/threads.py`` and the "Threads" section of
``benchmarks/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from excise.errors import ExciseError

ENV = "EXCISE_THREADS"


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def env_threads() -> int | None:
    """``$EXCISE_THREADS`` as a number, ``None`` when unset; an ExciseError when it is not a whole number >= 1."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ExciseError(f"{ENV} must be a whole number of threads (1 or more), got '{raw}'")
    return n


QUIET_LOAD = 0.5  # a 1-minute load average below this: nothing else is running


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def others_running(samples: int = 5) -> int | None:
    """Other processes running on the CPU right now: the fewest runnable tasks (``/proc/loadavg``,
    fourth field, less this process) over ``samples`` reads 10 ms apart, so a short-lived command
    does not count but a busy job does; ``None`` where the system has no ``/proc/loadavg``.

    Unlike the load average, this forgets a job the moment it ends (after ``make setup``, say)."""
    import time

    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(0.01)
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(counts) - 1)


def _quiet(cores: int) -> bool:
    """No other work running now (``others_running``; the load average where /proc is missing)."""
    others = others_running()
    return _load() < QUIET_LOAD if others is None else others <= cores - 2


def auto_threads(workers: int = 1, gemm_heavy: bool = False) -> int:
    """Threads for CPU work: ``$EXCISE_THREADS``, else 1 on <= 2 cores (every core for ``gemm_heavy``
    work started on a quiet machine), else the free cores / ``workers``.

    ``gemm_heavy`` marks long phases made of large matrix products (training the organism, tuning
    SmolLM2), where threads spin-wait least and pay most: the organism trains in 172 s with two
    threads against 230 s with one on a quiet 2-core machine. It needs nothing else running when
    it starts (``others_running``) and one worker; short, small-op work (evaluation, the demo)
    stays on one thread.
    """
    n = env_threads()
    if n is not None:
        return n
    cores = cpu_cores()
    if cores <= 2:
        return cores if gemm_heavy and workers <= 1 and cores > 1 and _quiet(cores) else 1
    busy = _load()
    free = min(cores, max(1, int(cores - busy + 0.5)))
    return max(1, free // max(1, workers))


@contextmanager
def use_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (``None``: leave as is), then restore."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def child_env(threads: int) -> dict[str, str]:
    """Variables that give a new process ``threads`` threads, set before torch and OpenMP load there."""
    return {ENV: str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
