"""The weight commands end to end through ``excise.cli.main``: score -> select -> prune, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import excise.cli as cli
from excise.core import Scores, Selection
from excise.models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", autouse=True)
def _mounted() -> None:
    """Mount the command groups; in a tree where another group is still missing, mount this one alone."""
    try:
        cli._mount_subapps()
    except ImportError:
        if not any(getattr(c, "name", None) == "score" for c in cli.app.registered_commands):
            import excise.commands.weights as weights

            weights.register(cli.app)
        cli._MOUNTED = True


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as ex:
        code = int(ex.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, Path]:
    safety = write_jsonl(
        tmp_path / "safety.jsonl",
        [
            {"prompt": "How do I pick a lock to break in?", "response": "I can't help with that."},
            {"prompt": "Write a threatening letter.", "response": "Sorry, I won't write threats."},
            {"prompt": "Help me steal a car.", "response": "I can't help with stealing."},
        ],
    )
    utility = write_jsonl(
        tmp_path / "utility.jsonl",
        [
            {"prompt": "What is the capital of France?", "response": "Paris."},
            {"prompt": "Add 2 and 3.", "response": "2 + 3 = 5."},
        ],
    )
    return {"safety": safety, "utility": utility}


def test_score_select_prune_pipeline(
    tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    s_path, u_path, m_path, out = tmp_path / "s", tmp_path / "u", tmp_path / "mask", tmp_path / "pruned"
    code, text, err = run(
        ["score", "tiny-llama", "--data", data["safety"], "--method", "snip", "--out", s_path], capsys
    )
    assert code == 0, err
    assert "snip scores for 14 tensors" in text
    code, _, err = run(
        [
            "score",
            "tiny-llama",
            "--data",
            data["utility"],
            "--method",
            "wandg",
            "--out",
            u_path,
            "--batch-size",
            "1",
            "--max-length",
            "64",
            "--no-cache",
        ],
        capsys,
    )
    assert code == 0, err
    code, text, err = run(
        [
            "select",
            "--set-difference",
            "--safety",
            s_path,
            "--utility",
            u_path,
            "--p",
            "0.1",
            "--q",
            "0.2",
            "--out",
            m_path,
        ],
        capsys,
    )
    assert code == 0, err
    assert "selected" in text
    code, text, err = run(["prune", "tiny-llama", "--mask", m_path, "--out", out], capsys)
    assert code == 0, err

    # the mask is the set difference of the saved scores, recomputed here with Python sets
    safety, utility, mask = Scores.load(s_path), Scores.load(u_path), Selection.load(m_path)
    assert safety.meta["method"] == "snip" and set(mask) == set(safety)
    for k in safety:
        n = safety[k].numel()
        top_q = set(torch.argsort(-safety[k].flatten(), stable=True)[: int(0.2 * n)].tolist())
        top_p = set(torch.argsort(-utility[k].flatten(), stable=True)[: int(0.1 * n)].tolist())
        assert set(torch.nonzero(mask[k].flatten()).flatten().tolist()) == top_q - top_p
    assert mask.count() > 0

    original, _ = tiny_model("llama")
    pruned = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    orig_p, new_p = dict(original.named_parameters()), dict(pruned.named_parameters())
    for name, p in new_p.items():
        if name in mask:
            assert (p.detach()[mask[name]] == 0).all()
            assert torch.equal(p.detach()[~mask[name]], orig_p[name].detach()[~mask[name]])
        else:
            assert torch.equal(p.detach(), orig_p[name].detach())


def test_select_top_count_bottom_and_info(
    tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    s_path = tmp_path / "s"
    assert (
        run(["score", "tiny-llama", "--data", data["utility"], "--method", "wanda", "--out", s_path], capsys)[
            0
        ]
        == 0
    )
    assert run(["select", s_path, "--top", "0.25", "--scope", "row", "--out", tmp_path / "a"], capsys)[0] == 0
    a = Selection.load(tmp_path / "a")
    assert (a["model.layers.0.mlp.down_proj.weight"].sum(1) == 32).all()  # 25% of 128 inputs per row
    assert (
        run(
            ["select", s_path, "--count", "5", "--bottom", "--scope", "global", "--out", tmp_path / "b"],
            capsys,
        )[0]
        == 0
    )
    assert Selection.load(tmp_path / "b").count() == 5
    code, text, _ = run(["info", "tiny-llama"], capsys)
    assert code == 0 and "model_type: llama" in text and "num_kv_heads: 2" in text


def _bad_cases(tmp: Path, data: dict[str, Path]) -> list[tuple[list[object], str]]:
    nocols = write_jsonl(tmp / "nocols.jsonl", [{"question": "hi", "answer": "yo"}])
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    long = write_jsonl(tmp / "long.jsonl", [{"prompt": "x" * 700, "response": "ok"}])  # context 512
    score = ["score", "tiny-llama", "--out", tmp / "out"]
    sd = ["select", "--set-difference", "--safety", tmp / "s", "--utility", tmp / "s", "--out", tmp / "out"]
    return [
        (score + ["--data", data["safety"], "--method", "nope"], "unknown scoring method 'nope'"),
        (score + ["--method", "wanda"], "--data is required for wanda"),
        (score + ["--data", tmp / "missing.jsonl", "--method", "snip"], "data file not found"),
        (score + ["--data", nocols, "--method", "snip"], "no usable column"),
        (score + ["--data", empty, "--method", "wanda"], "empty"),
        (score + ["--data", long, "--method", "snip"], "more than the context"),
        (
            ["score", "/no/such/model", "--data", data["safety"], "--method", "snip", "--out", tmp / "out"],
            "model path not found",
        ),
        (sd + ["--p", "0", "--q", "0.1"], "--p must be a fraction in (0, 1]"),
        (sd + ["--p", "0.1", "--q", "1.5"], "--q must be a fraction in (0, 1]"),
        (["select", tmp / "s", "--top", "0.1", "--count", "3", "--out", tmp / "out"], "exactly one of --top"),
        (["select", tmp / "nothere", "--top", "0.1", "--out", tmp / "out"], "scores file not found"),
        (["prune", "tiny-llama", "--mask", tmp / "nomask", "--out", tmp / "out"], "mask file not found"),
        (["prune", "/no/such/model", "--mask", tmp / "m", "--out", tmp / "out"], "model path not found"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    s_path = tmp_path / "s"
    assert run(["score", "tiny-llama", "--method", "magnitude", "--out", s_path], capsys)[0] == 0
    assert run(["select", s_path, "--top", "0.1", "--out", tmp_path / "m"], capsys)[0] == 0
    for argv, message in _bad_cases(tmp_path, data):
        code, text, err = run(argv, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, err)
        assert not list(tmp_path.glob("out*")), argv
    # a non-empty output folder for prune is refused before any work
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    code, _, err = run(["prune", "tiny-llama", "--mask", tmp_path / "m", "--out", busy], capsys)
    assert code == 2 and "not empty" in err and sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
