"""Progress of a running or finished sweep: counts, time per run, ETA (read-only; takes no locks)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excise.experiments.runs import RunState, read_meta, runs_root
from excise.experiments.sweep import sweep_runs


@dataclass
class SweepStatus:
    """Counts by state, durations of finished runs and an ETA for the rest."""

    sweep_dir: Path
    runs: list[RunState]
    counts: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    eta_s: float | None = None
    elapsed_running: dict[str, float] = field(default_factory=dict)
    submitted_pending: int = 0
    redo: Counter[str] = field(default_factory=Counter)  # pending because stale or corrupt

    @property
    def total(self) -> int:
        """Number of runs."""
        return len(self.runs)

    @property
    def finished(self) -> bool:
        """Whether every run is done or failed."""
        return self.counts.get("done", 0) + self.counts.get("failed", 0) == self.total


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    s = max(0.0, s)
    if s < 90:
        return f"{s:.1f}s"
    if s < 5400:
        return f"{s / 60:.1f}min"
    return f"{s / 3600:.1f}h"


def sweep_status(sweep_dir: str | Path) -> SweepStatus:
    """Classify every run; ETA = remaining work at the mean run time, spread over the runs in flight."""
    sweep_dir = Path(sweep_dir)
    runs = sweep_runs(sweep_dir)
    st = SweepStatus(sweep_dir, runs)
    now = time.time()
    for r in runs:
        # stale and corrupt runs will be redone: they count as pending work
        st.counts["pending" if r.state in ("stale", "corrupt") else r.state] += 1
        if r.state in ("stale", "corrupt"):
            st.redo[r.state] += 1
        s = r.status or {}
        if (
            r.state in ("pending", "stale", "corrupt")
            and (runs_root(sweep_dir) / r.run_id / "submission.json").exists()
        ):
            st.submitted_pending += 1
        if r.state == "done" and isinstance(s.get("duration_s"), (int, float)):
            st.durations.append(float(s["duration_s"]))
        if r.state == "running" and isinstance(s.get("started_at"), (int, float)):
            st.elapsed_running[r.run_id] = now - float(s["started_at"])
    if st.durations:
        mean = statistics.fmean(st.durations)
        pending = st.counts.get("pending", 0)
        in_flight = max(1, st.counts.get("running", 0))
        left = sum(max(0.0, mean - e) for e in st.elapsed_running.values())
        st.eta_s = (pending * mean + left) / in_flight
    elif not st.counts.get("pending") and not st.counts.get("running"):
        st.eta_s = 0.0
    return st


def status_lines(st: SweepStatus, show_runs: bool = False) -> list[str]:
    """The text ``excise status`` prints."""
    c = st.counts
    lines = [
        f"sweep {st.sweep_dir}: {st.total} runs",
        f"  done {c.get('done', 0)}   running {c.get('running', 0)}   failed {c.get('failed', 0)}   "
        f"pending {c.get('pending', 0)}"
        + (f" ({st.submitted_pending} submitted as jobs)" if st.submitted_pending else "")
        + _redo_note(st),
    ]
    if st.durations:
        lines.append(
            f"  time per run: mean {_fmt_s(statistics.fmean(st.durations))}, "
            f"min {_fmt_s(min(st.durations))}, max {_fmt_s(max(st.durations))}"
        )
    if st.finished:
        lines.append(
            "  finished" + ("" if not c.get("failed") else " (with failures; --retry-failed to rerun them)")
        )
    else:
        eta = "unknown until a run finishes" if st.eta_s is None else _fmt_s(st.eta_s)
        lines.append(f"  ETA: {eta}")
    if show_runs or c.get("failed") or st.redo.get("corrupt"):
        lines.append("")
        for r in st.runs:
            if not show_runs and r.state not in ("failed", "corrupt"):
                continue
            lines.append("  " + _run_line(st.sweep_dir, r))
    return lines


def _redo_note(st: SweepStatus) -> str:
    parts = []
    if st.redo.get("corrupt"):
        parts.append(f"{st.redo['corrupt']} with a corrupt record")
    if st.redo.get("stale"):
        parts.append(f"{st.redo['stale']} interrupted")
    return f" (of which {', '.join(parts)}: to be redone)" if parts else ""


def _run_line(sweep_dir: Path, r: RunState) -> str:
    s: dict[str, Any] = r.status or {}
    label = read_meta(runs_root(sweep_dir) / r.run_id).get("label", "")
    dur = s.get("duration_s")
    if r.state == "running" and isinstance(s.get("started_at"), (int, float)):
        dur = time.time() - float(s["started_at"])
    where = s.get("hostname") or ""
    extra = ""
    if r.state == "failed" and s.get("error"):
        err = s["error"]
        extra = f"  {err.get('type', '')}: {str(err.get('message', '')).splitlines()[0][:120] if err.get('message') else ''}"
    elif r.problem:
        extra = f"  [{r.problem}]"
    sub = read_submission(runs_root(sweep_dir) / r.run_id)
    if r.state == "pending" and sub:
        extra += f"  (submitted as job {sub.get('job_id')})"
    return (
        f"{r.run_id}  {r.state:<8} attempt {s.get('attempt', 0):<2} {_fmt_s(dur) if dur is not None else '-':>8}"
        f"  {where:<12} {label}{extra}"
    )


def read_submission(run_dir: Path) -> dict[str, Any] | None:
    """The run's submission.json (SLURM job id), if any."""
    import json

    try:
        data = json.loads((run_dir / "submission.json").read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
