"""The ``excise`` command under a hostile but fair user: exit codes, short errors, nothing overwritten.

Every test runs the real entry point in a subprocess (``python -m excise.cli``, which is what the
``excise`` script calls) and checks the exit code, that stderr is a few lines without a traceback,
and that no file appeared or changed where the command must not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from excise.experiments.runs import classify, read_status, runs_root

CLI = [sys.executable, "-m", "excise.cli"]
MAX_ERR_LINES = 5

pytestmark = pytest.mark.slow  # every test starts the real command in a fresh interpreter (seconds each)


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, EXCISE_NO_PROGRESS="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)


def _default_sigint() -> None:
    """Give the child the default SIGINT a user's shell gives: a pytest-xdist worker ignores SIGINT,
    its children inherit that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def excise(
    *args: Any, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``excise ARGS`` in a subprocess and return the completed process."""
    return subprocess.run(
        [*CLI, *(str(a) for a in args)],
        cwd=cwd,
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (folders as 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_short_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit code as given, stderr a few lines with no traceback, mentioning every needle."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= MAX_ERR_LINES, err
    for n in needles:
        assert n in err, (n, err)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- 1. exit codes


def test_a_failed_sweep_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    proc = excise(
        "sweep", "quadratic", "--mode", "points", "--set", "fail=true",
        "--executor", "inprocess", "--out", out, "--no-report",
    )  # fmt: skip
    assert_short_error(proc, 1, "some runs failed")
    states = [classify(d).state for d in runs_root(out).iterdir()]
    assert states == ["failed"] * 3


def test_a_successful_sweep_exits_0(tmp_path: Path) -> None:
    proc = excise(
        "sweep", "quadratic", "--mode", "points", "--executor", "inprocess", "--out", tmp_path / "sw",
        "--no-report",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def _wait_for(pred: Any, proc: subprocess.Popen[str], timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while not pred():
        assert proc.poll() is None, f"exited early with {proc.returncode}: {proc.communicate()}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _running(out: Path) -> bool:
    root = runs_root(out)
    return root.is_dir() and any(
        (read_status(d).status or {}).get("state") == "running" for d in root.iterdir()
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_exits_130_and_says_so(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "sw"
    cmd = [
        *CLI, "sweep", "quadratic", "--mode", "points", "--set", "sleep_s=30",
        "--executor", "inprocess", "--out", str(out), "--no-report",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    _wait_for(lambda: _running(out), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    proc.stderr = err  # type: ignore[assignment]
    assert_short_error(proc, 130, "interrupted")  # type: ignore[arg-type]
    # the interrupted run was handed back: pending, to be redone
    assert {classify(d).state for d in runs_root(out).iterdir()} == {"pending"}


def test_ctrl_c_during_score_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    rows = [{"prompt": f"question number {i} about locks", "response": "I can't help."} for i in range(3000)]
    data = write_jsonl(tmp_path / "big.jsonl", rows)
    before = snapshot(tmp_path)
    cmd = [*CLI, "score", "tiny-llama", "--method", "snip", "--data", str(data), "--batch-size", "1",
           "--no-cache", "--out", str(tmp_path / "s")]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    time.sleep(6)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    proc.stderr = err  # type: ignore[assignment]
    assert_short_error(proc, 130, "interrupted")  # type: ignore[arg-type]
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 2. usage errors


@pytest.mark.parametrize(
    "args, needle",
    [
        (["select", "s", "--set-difference", "--q", "abc"], "--q"),  # wrong type
        (["score", "tiny-llama"], "--method"),  # missing option
        (["score", "tiny-llama", "--bogus"], "--bogus"),  # unknown option
        (["frobnicate"], "frobnicate"),  # unknown command
        (["sweep", "quadratic", "--workers", "many"], "--workers"),
        (["spd", "run"], "experiment"),
    ],
)
def test_usage_errors_are_short_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = excise(*args, cwd=tmp_path)
    assert_short_error(proc, 2, needle)
    assert list(tmp_path.iterdir()) == []


def test_an_excise_error_is_one_line_and_exits_2(tmp_path: Path) -> None:
    proc = excise("select", tmp_path / "nothing", "--top", "0.1", "--out", tmp_path / "m", cwd=tmp_path)
    assert_short_error(proc, 2, "error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_spd_on_its_own_uses_the_same_exit_codes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "excise.spd.cli", "run", "no-such-spd-experiment"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert_short_error(proc, 2, "unknown SPD experiment")
    proc = subprocess.run(
        [sys.executable, "-m", "excise.spd.cli", "run", "--nope"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert_short_error(proc, 2, "--nope")


# ---------------------------------------------------------------- 11. list items in dotted overrides


def test_spd_C_is_reachable_by_list_index(tmp_path: Path) -> None:
    proc = excise("experiments", "show", "quadratic", "--set", "x=3", cwd=tmp_path)
    assert proc.returncode == 0
    code = (
        "from excise.spd.registry import load_config;"
        "c = load_config('tms_5-2', ['decomposition.modules.0.C=4']);"
        "print(c.decomposition.modules[0].C)"
    )
    res = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "4"
    proc = excise("spd", "run", "tms_5-2", "--set", "decomposition.modules.7.C=4", cwd=tmp_path)
    assert_short_error(proc, 2, "index 7")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 3. never overwrite a user's file


def test_score_and_select_never_overwrite_without_asking(tmp_path: Path) -> None:
    (tmp_path / "precious.json").write_text('{"my": "notes"}\n')
    (tmp_path / "notes.json").write_text('{"other": "notes"}\n')
    before = snapshot(tmp_path)
    proc = excise("score", "tiny-llama", "--method", "magnitude", "--out", "precious.json", cwd=tmp_path)
    assert_short_error(proc, 2, "precious.json", "--overwrite")
    proc = excise("score", "tiny-llama", "--method", "magnitude", "--out", "notes.txt", cwd=tmp_path)
    assert_short_error(proc, 2, "notes.txt", "may not hold a '.'")
    assert snapshot(tmp_path) == before

    assert excise("score", "tiny-llama", "--method", "magnitude", "--out", "s", cwd=tmp_path).returncode == 0
    assert excise("select", "s", "--top", "0.1", "--out", "m", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    proc = excise("score", "tiny-llama", "--method", "magnitude", "--out", "s", cwd=tmp_path)
    assert_short_error(proc, 2, "s.safetensors already exists", "earlier output of 'excise score'")
    proc = excise("select", "s", "--top", "0.5", "--out", "m.safetensors", cwd=tmp_path)
    assert_short_error(proc, 2, "m.safetensors already exists")
    assert snapshot(tmp_path) == before
    proc = excise("select", "s", "--top", "0.5", "--out", "m", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(tmp_path)["m.safetensors"] != before["m.safetensors"]
    assert json.loads((tmp_path / "precious.json").read_text()) == {"my": "notes"}


def test_evaluate_and_report_out_refuse_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("mine\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "thesis.tex").write_text("chapter 1\n")
    before = snapshot(tmp_path)
    proc = excise("evaluate", "--model", "tiny-llama", "--out", "metrics.json", cwd=tmp_path)
    assert_short_error(proc, 2, "metrics.json already exists")
    assert excise("sweep", "quadratic", "--mode", "points", "--executor", "inprocess", "--out", "sw",
                  "--no-report", cwd=tmp_path).returncode == 0  # fmt: skip
    proc = excise("report", "sw", "--out", "folder", cwd=tmp_path)
    assert_short_error(proc, 2, "folder", "not a report folder")
    proc = excise("sweep", "quadratic", "--mode", "points", "--executor", "inprocess", "--out", "folder",
                  cwd=tmp_path)  # fmt: skip
    assert_short_error(proc, 2, "not a sweep folder")
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("sw")} == before


# ---------------------------------------------------------------- 5. no path escapes


def test_names_cannot_escape_their_folders(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    doc = work / "evil.yaml"
    doc.write_text(yaml.safe_dump({"name": "../../../escaped", "experiment": {"type": "quadratic"}}))
    before = snapshot(tmp_path)
    proc = excise("sweep", "evil.yaml", "--executor", "inprocess", cwd=work)
    assert_short_error(proc, 2, "experiment name '../../../escaped'")
    target = tmp_path / "abs"
    proc = excise("spd", "run", "tms_5-2", "--set", f"name={target}", cwd=work)
    assert_short_error(proc, 2, f"experiment name '{target}'")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 7. output locations checked first


def test_bad_out_locations_fail_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder\n")
    cache = tmp_path / "cache"
    before = snapshot(tmp_path)
    env = {"EXCISE_CACHE_DIR": str(cache)}
    cases = [
        (["score", "tiny-llama", "--method", "snip", "--data", "safety", "--out", "afile/s"], "afile"),
        (["select", "afile/s", "--top", "0.1", "--out", "afile/m"], "afile"),
        (["sweep", "quadratic", "--executor", "inprocess", "--out", "afile"], "is a file"),
        (["sweep", "quadratic", "--executor", "inprocess", "--out", "afile/x"], "which is a file"),
        (["spd", "run", "tms_5-2", "--out", "afile/run"], "which is a file"),
    ]
    for args, needle in cases:
        proc = excise(*args, cwd=tmp_path, env=env)
        assert_short_error(proc, 2, needle)
    after = snapshot(tmp_path)
    # nothing computed or cached: the cache folder holds no scores
    assert not any(k.startswith("cache/scores") for k in after), after
    assert {k: v for k, v in after.items() if not k.startswith("cache")} == before


# ---------------------------------------------------------------- 8. other bad input


def test_too_long_max_length_and_broken_sidecars_are_clear_errors(tmp_path: Path) -> None:
    import torch

    from excise.core import Scores

    proc = excise("score", "tiny-llama", "--method", "snip", "--data", "safety", "--max-length", "100000",
                  "--out", "s", cwd=tmp_path)  # fmt: skip
    assert_short_error(proc, 2, "--max-length 100000", "context")
    Scores({"w": torch.rand(4, 4)}).save(tmp_path / "nounit")
    side = json.loads((tmp_path / "nounit.json").read_text())
    del side["unit"]
    (tmp_path / "nounit.json").write_text(json.dumps(side))
    Scores({"w": torch.rand(4, 4)}).save(tmp_path / "alist")
    (tmp_path / "alist.json").write_text("[1, 2, 3]")
    before = snapshot(tmp_path)
    proc = excise("select", "nounit", "--top", "0.5", "--out", "m", cwd=tmp_path)
    assert_short_error(proc, 2, "nounit.json", "'unit'")
    proc = excise("select", "alist", "--top", "0.5", "--out", "m", cwd=tmp_path)
    assert_short_error(proc, 2, "alist.json", "holds a list")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 9. clearer messages


def test_data_file_messages_name_the_example(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_bytes("\ufeffprompt,response\nhi,hello there\nbye,see you\n".encode())
    write_jsonl(
        tmp_path / "long.jsonl",
        [{"prompt": "ok", "response": "fine"}, {"prompt": "x" * 3000, "response": "no"}],
    )
    write_jsonl(
        tmp_path / "empty.jsonl", [{"prompt": "ok", "response": "fine"}, {"prompt": "hm", "response": ""}]
    )
    proc = excise("score", "tiny-llama", "--method", "snip", "--data", "bom.csv", "--out", "s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = excise(
        "score", "tiny-llama", "--method", "snip", "--data", "long.jsonl", "--out", "t", cwd=tmp_path
    )
    assert_short_error(proc, 2, "long.jsonl:2", "tokens long")
    proc = excise(
        "score", "tiny-llama", "--method", "snip", "--data", "empty.jsonl", "--out", "u", cwd=tmp_path
    )
    assert_short_error(proc, 2, "empty.jsonl:2", "'response' is empty")
    assert not (tmp_path / "t.safetensors").exists() and not (tmp_path / "u.safetensors").exists()


def test_status_says_which_runs_are_corrupt_and_a_sweep_redoes_them(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    args = ["sweep", "quadratic", "--mode", "points", "--executor", "inprocess", "--out", out]
    assert excise(*args, "--no-report").returncode == 0
    runs = sorted(runs_root(out).iterdir())
    (runs[0] / "status.json").unlink()  # a finished run's record deleted
    cfg = runs[1] / "config.yaml"
    cfg.write_bytes(cfg.read_bytes() + b"# \xff\n")  # one non-UTF-8 byte
    (out / "sweep.yaml").write_bytes(b"\xfe" + (out / "sweep.yaml").read_bytes())
    proc = excise("status", out)
    assert proc.returncode == 0, proc.stderr
    assert "2 with a corrupt record" in proc.stdout
    assert runs[0].name in proc.stdout and runs[1].name in proc.stdout
    proc = excise(*args)  # with the report
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(classify(d).state == "done" for d in runs)
    assert (read_status(runs[1]).status or {})["attempt"] == 2
    assert (out / "report" / "index.html").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------- 6. a full disk


@pytest.fixture()
def small_disk(tmp_path: Path) -> Any:
    """A 4 MiB tmpfs mounted for the test (needs root, as in CI); skipped with the reason otherwise."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:  # the last pages too
        with open(filler, "ab") as f:
            while True:
                f.write(b"\0" * 512)
                f.flush()
    except OSError:
        pass
    return filler


BOOKKEEPING = ("sweep.yaml", "config.yaml", "meta.json", "status.json", "metrics.json")


def _no_debris(root: Path) -> None:
    """No lock, no temp file, no empty record left by the engine (a run's own artifacts are its own)."""
    for p in root.rglob("*"):
        if p.is_file() and p.name != "filler":
            assert not p.name.endswith(".tmp"), p
            assert p.name not in ("lock", "lock.break"), p
            if p.name in BOOKKEEPING:
                assert p.stat().st_size > 0, f"zero-length file left: {p}"


def test_a_full_disk_before_the_sweep_stops_it_with_one_line(small_disk: Path) -> None:
    out = small_disk / "sw"
    args = ["sweep", "quadratic", "--mode", "points", "--executor", "inprocess", "--out", out, "--no-report"]
    filler = _fill(small_disk)
    proc = excise(*args)
    assert_short_error(proc, 1, str(out), "No space left on device")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "out of memory" not in proc.stderr and "crashed" not in proc.stdout
    _no_debris(small_disk)
    filler.unlink()
    proc = excise(*args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(classify(d).state for d in runs_root(out).iterdir()) == ["done"] * 3


@pytest.mark.parametrize("executor", ["inprocess", "local"])
def test_a_disk_that_fills_during_a_sweep_stops_it_and_resume_works(small_disk: Path, executor: str) -> None:
    out = small_disk / "sw"
    cmd = [*CLI, "sweep", "quadratic", "--mode", "points", "--set", "sleep_s=3", "--set", "sleep_attempts=1",
           "--executor", executor, "--workers", "1", "--out", str(out), "--no-report"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    _wait_for(lambda: _running(out), proc)
    filler = _fill(small_disk)
    stdout, err = proc.communicate(timeout=900)
    proc.stderr = err  # type: ignore[assignment]
    assert_short_error(proc, 1, str(out), "No space left on device")  # type: ignore[arg-type]
    assert len(err.strip().splitlines()) == 1, err
    # stopped at once: no retries of the run, no crash diagnosis
    assert "out of memory" not in err and "crashed" not in stdout and "retrying" not in stdout
    _no_debris(small_disk)
    states = [classify(d).state for d in runs_root(out).iterdir()]
    assert "done" not in states and "failed" not in states, states  # nothing recorded as the run's fault
    filler.unlink()
    proc2 = excise(*cmd[len(CLI) :])
    assert proc2.returncode == 0, proc2.stderr
    for d in runs_root(out).iterdir():
        assert classify(d).state == "done"
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        assert metrics["exact"] == pytest.approx((cfg["x"] - 1) ** 2 + (cfg["y"] + 2) ** 2)


def test_a_read_only_out_is_refused_before_any_work(tmp_path: Path, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        proc = excise("score", "tiny-llama", "--method", "magnitude", "--out", small_disk / "s")
        assert_short_error(proc, 2, "Read-only file system")
        proc = excise("sweep", "quadratic", "--executor", "inprocess", "--out", small_disk / "sw")
        assert_short_error(proc, 2, "Read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert list(small_disk.iterdir()) == []
