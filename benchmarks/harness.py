"""The measuring method every benchmark here follows.

- a fixed thread count, printed (default 1 on CPU), set in the environment of every measured process
  before torch loads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``EXCISE_THREADS``);
- every measurement runs in a fresh process (so each method's peak memory is its own: the child's
  ``VmHWM`` from ``/proc/self/status``, and its RSS before the method ran);
- the compared methods are interleaved (A B C, then B C A, ...), each repeated at least 3 times;
  figures are medians with the min-max spread;
- the load average is printed before and after every comparison.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULT_TAG = "BENCH-RESULT "


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the core count, as one phrase."""
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} / {b:.2f} / {c:.2f} on {os.cpu_count()} cores"


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a measured child process: ``threads`` threads everywhere, set before torch loads."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "EXCISE_THREADS"):
        env[var] = str(threads)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("EXCISE_NO_PROGRESS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def rss_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in bytes (Linux ``VmRSS`` and ``VmHWM``)."""
    text = Path("/proc/self/status").read_text()
    vals = []
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"{key}:\s+(\d+)", text)
        vals.append(int(m.group(1)) * 1024 if m else 0)
    return vals[0], vals[1]


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result on one tagged line (the parent reads the last such line)."""
    print(RESULT_TAG + json.dumps(result), flush=True)


NICE = int(os.environ.get("BENCH_NICE", "0"))


def run_child(argv: Sequence[str], threads: int, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python argv...`` in a fresh process at ``threads`` threads and return its emitted result.

    ``$BENCH_NICE`` (e.g. -15, as root) runs it ahead of the machine's other work.
    """
    t0 = time.perf_counter()
    cmd = ["nice", "-n", str(NICE), sys.executable, *argv] if NICE else [sys.executable, *argv]
    proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {argv} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][len(RESULT_TAG) :])
    out["process_wall_s"] = wall
    return out


def interleaved(
    names: Sequence[str], repeats: int, run_one: Callable[[str], dict[str, Any]], say: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Run every name ``repeats`` times, rotating the order each round; results per name."""
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    order = list(names)
    for r in range(repeats):
        for n in order:
            res = run_one(n)
            out[n].append(res)
            say(f"  round {r + 1}/{repeats} {n}: {res.get('seconds', float('nan')):.2f} s")
        order = order[1:] + order[:1]
    return out


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt_spread(values: Sequence[float], digits: int = 2) -> str:
    med, lo, hi = spread(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio_spread(a: Sequence[float], b: Sequence[float]) -> str:
    """Median of the per-round ratios a_i / b_i, with their spread (rounds are interleaved)."""
    return fmt_spread([x / y for x, y in zip(a, b, strict=True)]) + "x"


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"
