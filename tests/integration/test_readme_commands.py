"""Every command the README shows runs as written (in a scratch folder, in the order shown).

``make demo`` / ``make test`` are the set-up and this very suite, so they are not re-run here; every
``excise ...`` line of a ``bash`` block and every ``python`` block is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall((ROOT / "README.md").read_text())]


def readme_commands() -> list[str]:
    """The ``excise`` commands of the README's bash blocks (comments dropped, ``;`` splits)."""
    cmds: list[str] = []
    for lang, body in readme_blocks():
        if lang != "bash":
            continue
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in line.split(";"):
                part = part.strip()
                if part.startswith("excise "):
                    cmds.append(part)
    return cmds


def test_the_readme_shows_commands() -> None:
    cmds = readme_commands()
    assert any(c.startswith("excise score") for c in cmds) and any(c == "excise demo" for c in cmds)


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    exe = shutil.which("excise", path=str(Path(sys.executable).parent)) or "excise"
    env = {**os.environ, "EXCISE_NO_PROGRESS": "1"}
    failures = []
    for cmd in readme_commands():
        argv = [exe, *cmd.split()[1:]]
        res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            failures.append(f"{cmd!r} exited {res.returncode}: {res.stderr.strip()[-400:]}")
    for lang, body in readme_blocks():
        if lang == "python":
            res = subprocess.run(
                [sys.executable, "-c", body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if res.returncode != 0:
                failures.append(f"python block exited {res.returncode}: {res.stderr.strip()[-400:]}")
    assert not failures, "\n".join(failures)
