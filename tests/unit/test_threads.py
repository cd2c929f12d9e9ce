"""The one thread policy (excise.threads): the override, the rule, and that every call site uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import excise.threads as th
from excise.errors import ExciseError

SRC = Path(th.__file__).resolve().parent


def _machine(monkeypatch: pytest.MonkeyPatch, cores: int, load: float) -> None:
    monkeypatch.delenv(th.ENV, raising=False)
    monkeypatch.setattr(th, "cpu_cores", lambda: cores)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(th, "others_running", lambda: None)  # the rule from the load average alone


@pytest.mark.parametrize(
    ("cores", "load", "workers", "expected"),
    [
        (1, 0.0, 1, 1),
        (2, 0.0, 1, 1),  # two cores: one thread, quiet or not (spin-waiting threads crawl under load)
        (2, 5.0, 1, 1),
        (8, 0.2, 1, 8),  # the free cores
        (8, 3.0, 1, 5),
        (8, 20.0, 1, 1),  # at least one
        (8, 0.0, 4, 2),  # shared among workers
        (8, 7.0, 4, 1),
    ],
)
def test_rule(monkeypatch: pytest.MonkeyPatch, cores: int, load: float, workers: int, expected: int) -> None:
    _machine(monkeypatch, cores, load)
    assert th.auto_threads(workers=workers) == expected


@pytest.mark.parametrize(
    ("cores", "load", "workers", "expected"),
    [
        (2, 0.0, 1, 2),  # a quiet two-core machine: long GEMM-heavy training takes both cores
        (2, 0.4, 1, 2),
        (2, 0.6, 1, 1),  # anything else running: one thread
        (2, 0.0, 2, 1),  # two workers (e.g. pytest-xdist): one each
        (1, 0.0, 1, 1),
        (8, 3.0, 1, 5),  # more cores: the same rule as any work
    ],
)
def test_rule_for_gemm_heavy_work(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, workers: int, expected: int
) -> None:
    _machine(monkeypatch, cores, load)
    assert th.auto_threads(workers=workers, gemm_heavy=True) == expected


@pytest.mark.parametrize(("others", "expected"), [(0, 2), (1, 1), (3, 1)])
def test_gemm_heavy_work_looks_at_what_runs_now_not_the_load_average(
    monkeypatch: pytest.MonkeyPatch, others: int, expected: int
) -> None:
    _machine(monkeypatch, 2, 1.5)  # a load average still high from a job that has just ended
    monkeypatch.setattr(th, "others_running", lambda: others)
    assert th.auto_threads(gemm_heavy=True) == expected
    assert th.auto_threads() == 1


def test_others_running_sees_a_busy_process() -> None:
    quiet = th.others_running()
    assert quiet is None or quiet >= 0
    if quiet is None:
        return
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.5)
        assert th.others_running() >= 1
    finally:
        busy.kill()
        busy.wait()


def test_the_variable_overrides_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, 2, 9.0)
    monkeypatch.setenv(th.ENV, "3")
    assert th.auto_threads() == 3
    assert th.auto_threads(workers=4) == 3
    for bad in ("many", "0", "-1", "1.5"):
        monkeypatch.setenv(th.ENV, bad)
        with pytest.raises(ExciseError, match=f"EXCISE_THREADS must be a whole number.*'{bad}'"):
            th.auto_threads()


def test_use_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with th.use_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with th.use_threads(None):
        assert torch.get_num_threads() == before


def test_a_child_process_gets_the_count_before_torch_loads() -> None:
    env = {**os.environ, **th.child_env(1)}
    code = "import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_no_other_thread_rule_is_left_in_the_package() -> None:
    """Thread counts come from excise.threads only: every other torch.set_num_threads call takes its count
    from auto_threads() (or an explicit user setting), and the old variable is gone."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "threads.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(SRC)}:{i}"
            if "EXCISE_TRAIN_THREADS" in line:
                offenders.append(where)
            if "set_num_threads(" in line and "auto_threads()" not in line:
                offenders.append(where)
    assert offenders == []
