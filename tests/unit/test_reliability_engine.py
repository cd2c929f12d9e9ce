"""The experiment engine's shape: no import circle, run modules split by idea, executor options via --set."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import excise
from excise.experiments import load_document

SRC = Path(excise.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package imported at module level (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")
                    up = up[: len(up) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            # the module named (a package's __init__ that runs first is not an edge of the circle)
            out.update(n for n in names if n in modules and n != me)

    visit(tree.body)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    mods = set(files)
    return {m: _top_level_imports(p, mods) for m, p in files.items()}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen and nxt.startswith("excise.experiments"):
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


@pytest.mark.parametrize(
    "module",
    [
        "excise.experiments.executors",
        "excise.experiments.sweep",
        "excise.experiments.runs",
        "excise.experiments.layout",
        "excise.experiments.record",
        "excise.experiments.locks",
        "excise.experiments.report",
        "excise.experiments.status",
    ],
)
def test_no_import_circle_in_the_engine(module: str) -> None:
    graph = _graph()
    assert module in graph
    assert _cycle_through(graph, module) is None


def test_executors_do_not_import_the_sweep() -> None:
    graph = _graph()
    assert "excise.experiments.sweep" not in graph["excise.experiments.executors"]
    # and not lazily either: the source names no sweep import at all
    text = (SRC / "experiments" / "executors.py").read_text()
    assert "excise.experiments.sweep" not in text


def test_run_modules_are_split_by_idea_and_layered() -> None:
    graph = _graph()
    e = "excise.experiments."
    assert graph[e + "layout"].isdisjoint({e + "record", e + "locks", e + "runs"})
    assert graph[e + "locks"].isdisjoint({e + "record", e + "runs"})
    assert e + "runs" not in graph[e + "record"]
    for name in ("layout", "record", "locks", "runs"):
        assert len((SRC / "experiments" / f"{name}.py").read_text().splitlines()) < 500, name
    # the old import paths keep working
    from excise.experiments import layout, locks, record, runs

    assert runs.classify is record.classify and runs.RunLock is locks.RunLock
    assert runs.run_id_for is layout.run_id_for and runs.read_status is record.read_status


def test_short_executor_flags_are_the_set_overrides() -> None:
    from excise.commands.experiments import executor_overrides

    flags = executor_overrides(
        executor="slurm", gpus="0,1", partition="gpu", time_min=30, mem_gb=8.5, wait=True, workers=2
    )
    by_flags = load_document("quadratic", flags).executor
    by_set = load_document(
        "quadratic",
        [
            "executor.kind=slurm",
            "executor.gpus=['0', '1']",
            "executor.slurm.partition=gpu",
            "executor.slurm.time_min=30",
            "executor.slurm.mem_gb=8.5",
            "executor.slurm.wait=true",
            "executor.workers=2",
        ],
    ).executor
    assert by_flags == by_set
    assert by_set.kind == "slurm" and by_set.gpus == ["0", "1"] and by_set.slurm.partition == "gpu"
    assert by_set.slurm.time_min == 30 and by_set.slurm.mem_gb == 8.5 and by_set.workers == 2
    # every SLURM option is reachable, not only those with a flag
    doc = load_document(
        "quadratic", ["executor.slurm.account=lab", "executor.slurm.additional.exclusive=true"]
    )
    assert doc.executor.slurm.account == "lab" and doc.executor.slurm.additional == {"exclusive": True}


@pytest.mark.slow
def test_the_experiments_group_on_its_own_uses_the_cli_exit_codes(tmp_path: Path) -> None:
    env = dict(os.environ, EXCISE_NO_PROGRESS="1")
    cmd = [
        sys.executable, "-m", "excise.commands.experiments", "sweep", "quadratic", "--mode", "points",
        "--set", "fail=true", "--executor", "inprocess", "--out", str(tmp_path / "sw"), "--no-report",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd[:3], "sweep", "--nope"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--nope" in proc.stderr
