"""``excise heads`` and ``excise lmeval`` end to end through ``excise.cli.main``, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import excise.cli as cli
from excise.core import Selection

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _mounted() -> None:
    try:
        cli._mount_subapps()
    except ImportError:
        if not any(getattr(c, "name", None) == "heads" for c in cli.app.registered_commands):
            import excise.commands.heads as heads

            heads.register(cli.app)
        cli._MOUNTED = True


def run(argv, capsys):
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as ex:
        code = int(ex.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_heads_command_writes_log_selection_and_results(tmp_path, capsys):
    out = tmp_path / "h"
    code, stdout, err = run(
        ["heads", "tiny-gpt2", "--metric", "euclidean", "--budget", "balanced", "--fraction", "0.25",
         "--n-prompts", "8", "--tasks", "smollm2-commonsense", "--limit", "4", "--out", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "pruned 2 of 8 heads" in stdout
    sel = Selection.load(out / "head_selection")
    assert sel.unit == "head" and sel.count() == 2
    log = json.loads((out / "pruning_log.json").read_text())
    assert len(log["pruned"]) == 2 and log["settings"]["linkage"] == "ward"
    res = json.loads((out / "results.json").read_text())
    assert set(res["accuracy_after"]) == {"smollm2-commonsense"}
    assert (out / "pruning_log.txt").read_text().startswith("# heads pruned: 2 of 8")


def test_heads_remove_saves_a_smaller_model_plain_transformers_loads(tmp_path, capsys, monkeypatch):
    import excise.models.tiny as tiny

    real = tiny.tiny_model
    monkeypatch.setattr(tiny, "tiny_model_llama", lambda: real("llama", kv_heads=4))
    out = tmp_path / "r"
    code, stdout, err = run(
        ["heads", "tiny-llama", "--fraction", "0.5", "--intervention", "remove", "--n-prompts", "8",
         "--save-model", "--out", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    m = AutoModelForCausalLM.from_pretrained(out / "model")
    assert m.config.num_attention_heads == 2
    assert m.model.layers[1].self_attn.o_proj.weight.shape[1] == 2 * m.config.head_dim
    with torch.no_grad():
        m(input_ids=torch.tensor([[5, 6, 7]]))


@pytest.mark.parametrize(
    "args,msg",
    [
        (["tiny-llama", "--fraction", "1.0"], r"fraction of heads to prune must be in \[0, 1\)"),
        (["tiny-llama", "--fraction", "-0.1"], r"fraction of heads to prune must be in \[0, 1\)"),
        (["tiny-llama", "--budget", "greedy"], "unknown head budget 'greedy'"),
        (["tiny-llama", "--metric", "manhattan"], "unknown --metric"),
        (["tiny-llama", "--intervention", "remove"], "grouped-query attention"),
        (["tiny-opt", "--intervention", "remove"], "hidden_size / heads"),
        (["tiny-llama", "--intervention", "remove", "--budget", "imbalanced"], "needs budget 'balanced'"),
        (["tiny-llama", "--tasks", "nope"], "unknown task 'nope'"),
    ],
)
def test_heads_bad_input_is_one_line_exit_2(tmp_path, capsys, args, msg):
    import re

    out = tmp_path / "x"
    code, stdout, err = run(["heads", *args, "--out", out], capsys)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and re.search(msg, line), line
    assert not (out / "pruning_log.json").exists()


def test_lmeval_command_both_evaluators_agree(tmp_path, capsys):
    code, a, err = run(
        ["lmeval", "tiny-opt", "--tasks", "organism-skills", "--limit", "6", "--evaluator", "excise"], capsys
    )
    assert code == 0, err
    code, b, err = run(
        ["lmeval", "tiny-opt", "--tasks", "organism-skills", "--limit", "6", "--out", tmp_path / "r.json"],
        capsys,
    )
    assert code == 0, err
    assert a.splitlines()[0] == b.splitlines()[0]
    assert json.loads((tmp_path / "r.json").read_text())["results"]["organism-skills"]["n"] == 6


def test_lmeval_bad_input(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "q", "choices": ["a", "b"]}\n')
    code, _, err = run(["lmeval", "tiny-opt", "--tasks", bad], capsys)
    assert code == 2 and "missing field(s) gold" in err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "lm_eval" else real(n, *a))
    code, _, err = run(["lmeval", "tiny-opt", "--tasks", "organism-skills"], capsys)
    assert code == 2 and "excise[lmeval]" in err and "\n" not in err.strip()
