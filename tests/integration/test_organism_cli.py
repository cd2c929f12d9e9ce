"""``excise organism``, ``excise demo`` and ``excise evaluate``: arguments checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import excise.cli as cli

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", autouse=True)
def _mounted() -> None:
    """Mount the command groups; where another group is still missing, mount this one alone."""
    try:
        cli._mount_subapps()
    except ImportError:
        import excise.commands.safety as safety

        if not any(getattr(c, "name", None) == "demo" for c in cli.app.registered_commands):
            safety.register(cli.app)
        cli._MOUNTED = True


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as ex:
        code = int(ex.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unknown_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["organism", "train", "--recipe", "nope"], capsys)
    assert code == 2 and "unknown organism recipe 'nope'" in err and "Traceback" not in err


def test_train_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["organism", "train", "--recipe", "tiny"], capsys)
    assert code == 0, err
    code, out, err = run(["organism", "train", "--recipe", "tiny"], capsys)
    assert code == 0 and "already cached" in out
    code, out, err = run(["organism", "info", "--recipe", "tiny", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["cached"] and Path(info["path"]).is_dir() and "default" in info["recipes"]


def test_unwritable_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(f / "sub"))
    code, _, err = run(["organism", "train", "--recipe", "tiny"], capsys)
    assert code == 2 and "EXCISE_CACHE_DIR" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--p", "1.5"], "p must be a fraction in (0, 1], got 1.5"),
        (["--q", "-0.1"], "q must be a fraction in (0, 1], got -0.1"),
        (["--recipe", "nope"], "unknown organism recipe"),
        (["--method", "nope"], "unknown scoring method"),
        (["--samples", "-1"], "'eval.samples': Input should be greater than or equal to 0"),
        (["--set", "eval.limt=3"], "unknown key 'eval.limt'"),
    ],
)
def test_demo_rejects_bad_arguments_before_work(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["demo", *args], capsys)
    assert code == 2 and message in err


def test_evaluate_missing_suffix_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["evaluate", "--suffixes", tmp_path / "none.txt"], capsys)
    assert code == 2 and "suffix file not found" in err


def test_info_of_the_smollm2_recipe_reads_its_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from excise.zoo import smollm2 as sm

    monkeypatch.setenv("EXCISE_CACHE_DIR", str(tmp_path))  # the fake model below must not leak

    code, out, _ = run(["organism", "info", "--recipe", "smollm2-safety", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["cached"] is False and info["log"] is None
    assert info["settings"]["n_harmful"] == sm.SAFETY_RECIPE.n_harmful
    folder = Path(info["path"])  # fake a tuned model: the info command only reads the files
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / sm.RECIPE_LOG).write_text(json.dumps({"recipe": {}, "seconds": 412.0, "n_train": 360}))
    code, out, _ = run(["organism", "info", "--recipe", "smollm2-safety"], capsys)
    assert code == 0 and "(tuned)" in out and "tuned in 412s on 360 examples" in out
