"""Thread policies for the cached demo, on the machine as it is and beside two CPU-bound jobs.

Each policy is one whole ``excise demo`` process (the organism already cached), timed from outside
with ``os.wait4`` (wall seconds, CPU seconds, involuntary context switches: a sign of spin-waiting
threads that the scheduler has to take off a core). Policies:

- ``1 thread``: ``EXCISE_THREADS=1`` (what ``excise.threads.auto_threads()`` picks on <= 2 cores);
- ``2 threads``: ``EXCISE_THREADS=2``, OpenMP's default wait policy (threads spin before sleeping);
- ``2 threads, passive``: ``EXCISE_THREADS=2 OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once).

Conditions: ``as is`` (whatever else runs on the machine) and ``+2 busy``: two
``python -c "while True: pass"`` processes started before the round and killed after it.
Policies are interleaved, ``--repeats`` rounds per condition, medians with min-max, load average
printed before and after. A run over ``--timeout`` seconds is stopped and counted at the timeout.

On a shared machine, run it in its own session with a raised autogroup priority (as root; Linux
schedules sessions against each other, so a plain ``nice`` only orders processes inside one), so that
"as is" approaches a quiet machine and "+2 busy" is the demo beside two busy jobs of the same weight:

    setsid sh -c 'echo -15 > /proc/self/autogroup; exec python benchmarks/threads.py --cache DIR'

Usage: python benchmarks/threads.py [--repeats 3] [--timeout 180] [--cache DIR]
(``--cache``: an ``EXCISE_CACHE_DIR`` that holds the trained organism; run ``excise demo`` once first.)
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

POLICIES = {
    "1 thread": {"EXCISE_THREADS": "1"},
    "2 threads": {"EXCISE_THREADS": "2"},
    "2 threads, passive": {"EXCISE_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}


def excise_bin() -> str:
    return str(Path(sys.executable).with_name("excise"))


def run_demo(policy: dict[str, str], cache: str | None, timeout: float) -> dict[str, float]:
    """One cached demo in a fresh process: wall, CPU seconds, involuntary switches, peak RSS."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(policy)
    env.setdefault("HF_HUB_OFFLINE", "1")
    if cache:
        env["EXCISE_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [excise_bin(), "demo", "--out", str(Path(tmp) / "report")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        timed_out = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.send_signal(signal.SIGKILL)
                pid, status, ru = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": wall,
        "cpu": ru.ru_utime + ru.ru_stime,
        "invol": float(ru.ru_nivcsw),
        "peak_mib": ru.ru_maxrss / 1024,
        "timed_out": float(timed_out),
        "rc": float(proc.returncode),
    }


def _autogroup_nice() -> str:
    """This session's autogroup niceness (Linux), or 'n/a'."""
    try:
        return Path("/proc/self/autogroup").read_text().split()[-1]
    except (OSError, IndexError):
        return "n/a"


def busy_jobs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--cache", default=os.environ.get("EXCISE_CACHE_DIR"))
    ap.add_argument("--conditions", nargs="+", default=["as is", "+2 busy"])
    args = ap.parse_args()

    def say(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    lines = [
        f"`python benchmarks/threads.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"{os.cpu_count()} cores, autogroup priority {_autogroup_nice()}; each figure one whole cached "
        f"`excise demo` process; timeout {args.timeout:.0f} s.",
        "",
        "| condition | policy | wall s, median (min-max) | CPU s | involuntary switches | runs over the timeout "
        "| load before / after |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for cond in args.conditions:
        jobs = busy_jobs(2) if cond == "+2 busy" else []
        try:
            time.sleep(2 if jobs else 0)
            lb = H.load_average()
            say(f"{cond}: {lb}")
            res = H.interleaved(
                list(POLICIES),
                args.repeats,
                lambda p: run_demo(POLICIES[p], args.cache, args.timeout),
                say,
            )
            la = H.load_average()
        finally:
            for j in jobs:
                j.kill()
                j.wait()
        for p, rs in res.items():
            bad = [r for r in rs if r["rc"] != 0 and not r["timed_out"]]
            if bad:
                say(f"WARNING: {p} exited with {bad[0]['rc']:.0f}")
            lines.append(
                f"| {cond} | {p} | {H.fmt_spread([r['seconds'] for r in rs], 1)} | "
                f"{H.fmt_spread([r['cpu'] for r in rs], 1)} | {H.fmt_spread([r['invol'] for r in rs], 0)} | "
                f"{sum(int(r['timed_out']) for r in rs)} / {len(rs)} | {lb.split()[2]} / {la.split()[2]} |"
            )
        say("\n".join(lines[-len(res) :]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
