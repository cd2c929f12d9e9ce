"""``excise finetune``: bad input is one ExciseError line, exit 2, before any work; a small real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(argv: list[str]) -> int:
    from excise.cli import _mount_subapps, app, run_app

    _mount_subapps()
    return run_app(app, argv, prog_name="excise")


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    p = tmp_path / "train.jsonl"
    rows = [{"prompt": f"say {w}", "response": f"{w} {w}"} for w in ("cat", "dog", "owl", "fox")]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model means work started: fail the test if it happens."""
    import excise.models

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(excise.models, "load_model", boom)


def _one_line_error(capsys: pytest.CaptureFixture[str], pattern: str) -> None:
    import re

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and re.search(pattern, err), err


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--freeze-from", "snip", "--sparsity", "0"], r"--sparsity must be a fraction in \(0, 1\].*0"),
        (["--freeze-from", "snip", "--sparsity", "1.5"], r"--sparsity must be a fraction in \(0, 1\].*1.5"),
        (["--freeze-from", "snip", "--update-scale", "-0.1"], r"--update-scale must be in \[0, 1\].*-0.1"),
        (["--freeze-from", "snip", "--grad-scale", "2"], r"--update-scale must be in \[0, 1\].*2"),
        (["--freeze-from", "snip", "--reselect-every", "0"], r"--reselect-every must be at least 1.*0"),
        (["--reselect-every", "5"], r"--reselect-every re-scores.*--freeze-from"),
        (["--freeze-from", "nope"], r"unknown scoring method 'nope'"),
        (["--freeze", "m", "--freeze-from", "snip"], r"--freeze MASK or --freeze-from METHOD, not both"),
        (["--freeze", "nowhere/mask"], r"mask file not found"),
    ],
)
def test_bad_arguments_exit_2_before_work(
    extra: list[str], pattern: str, train_file: Path, tmp_path: Path, no_model: None, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    code = _run(["finetune", "tiny-llama", "--data", str(train_file), "--out", str(out), *extra])
    assert code == 2
    _one_line_error(capsys, pattern)
    assert not out.exists()


def test_empty_training_set_exits_2(tmp_path: Path, no_model: None, capsys) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code = _run(["finetune", "tiny-llama", "--data", str(empty), "--out", str(tmp_path / "o")])
    assert code == 2
    _one_line_error(capsys, r"empty")
    assert not (tmp_path / "o").exists()


def test_existing_non_empty_out_without_overwrite_exits_2(
    train_file: Path, tmp_path: Path, no_model: None, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = _run(["finetune", "tiny-llama", "--data", str(train_file), "--out", str(out)])
    assert code == 2
    _one_line_error(capsys, r"not empty.*--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _mask_file(tmp_path: Path, family: str, transpose: bool = False) -> Path:
    from excise.core import Selection
    from excise.models import linear_layers, tiny_model

    m, _ = tiny_model(family, seed=0)
    tensors = {
        f"{n}.weight": torch.zeros(mod.weight.shape, dtype=torch.bool) for n, mod in linear_layers(m).items()
    }
    if transpose:
        k = next(k for k, t in tensors.items() if t.shape[0] != t.shape[1])
        tensors[k] = tensors[k].t().contiguous()
    path = tmp_path / f"mask_{family}"
    Selection(tensors).save(path)
    return path


@pytest.mark.parametrize(
    ("family", "transpose", "pattern"), [("gpt2", False, "does not have"), ("llama", True, "shape")]
)
def test_mask_that_does_not_fit_the_model_exits_2_before_training(
    family: str, transpose: bool, pattern: str, train_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import excise.freeze_analysis

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("training started with a mask that does not fit")

    monkeypatch.setattr(excise.freeze_analysis, "freeze_finetune", boom)
    mask = _mask_file(tmp_path, family, transpose)
    out = tmp_path / "out"
    code = _run(
        ["finetune", "tiny-llama", "--data", str(train_file), "--freeze", str(mask), "--out", str(out)]
    )
    assert code == 2
    _one_line_error(capsys, rf"{pattern}.*another model")
    assert not out.exists()


def test_finetune_command_writes_model_masks_and_summary(train_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from excise.core import Selection
    from excise.models import load_model

    out = tmp_path / "run"
    argv = ["finetune", "tiny-llama", "--data", str(train_file), "--freeze-from", "snip"]
    argv += ["--freeze-data", str(train_file), "--sparsity", "0.2", "--max-steps", "3", "--batch-size", "2"]
    argv += ["--learning-rate", "1e-2", "--weight-decay", "0.1", "--reselect-every", "1", "--out", str(out)]
    assert _run(argv) == 0
    summary = json.loads((out / "analysis_summary.json").read_text())
    assert summary["prune_method"] == "snip" and summary["sparsity_ratio"] == 0.2
    assert summary["training_data"] == str(train_file) and summary["prune_data"] == str(train_file)
    assert [c["step"] for c in summary["frozen_changes"]] == [1, 2]
    assert summary["config"]["finetune"]["reselect_every"] == 1
    orig = Selection.load(out / "original_safety_masks")
    new = Selection.load(out / "new_safety_masks")
    assert summary["original_safety_critical_count"] == orig.count()
    assert summary["new_safety_critical_count"] == new.count()
    load_model(out)  # a plain save_pretrained folder
    # again without --overwrite: refused; with it: replaced
    assert _run(argv) == 2
    assert _run([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "train.jsonl"]
