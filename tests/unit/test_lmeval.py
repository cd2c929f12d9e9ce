"""Zero-shot multiple choice: our evaluator against lm-evaluation-harness on local tasks; bad task files."""

from __future__ import annotations

import json

import pytest
import torch

from excise.errors import ExciseError
from excise.evaluation.lmeval import (
    TASKS,
    TASKS_DIR,
    encode_pair,
    evaluate_mc,
    load_task,
    mc_accuracy,
    require_lmeval,
    resolve_tasks,
)
from excise.models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def naive_loglikelihood(model, tok, context, choice):
    """Sum of log p(token) over the choice's tokens, one full forward per choice, no batching."""
    ids = tok.encode(context + " " + choice, add_special_tokens=False)
    n_ctx = len(tok.encode(context, add_special_tokens=False))
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(float(logp[i - 1, ids[i]]) for i in range(n_ctx, len(ids)))


def test_shipped_tasks_load_and_are_well_formed():
    for name in TASKS:
        task = load_task(TASKS_DIR / f"{name}.jsonl")
        assert len(task.docs) >= 30
        assert all(len(d.choices) == 4 and 0 <= d.gold < 4 for d in task.docs)
        assert len({d.gold for d in task.docs}) > 1  # the right answer is not always in one place
    skills = [json.loads(x)["skill"] for x in (TASKS_DIR / "organism-skills.jsonl").read_text().splitlines()]
    assert len(set(skills)) >= 10


@pytest.mark.slow
def test_own_loglikelihoods_equal_a_naive_forward_per_choice():
    model, tok = tiny_model("llama", seed=0)
    task = load_task(TASKS_DIR / "smollm2-commonsense.jsonl")
    res = mc_accuracy(model, tok, task, limit=5)
    for doc, lls in zip(task.docs[:5], res["loglikelihoods"], strict=True):
        want = [naive_loglikelihood(model, tok, doc.context, c) for c in doc.choices]
        assert lls == pytest.approx(want, rel=1e-5, abs=1e-4)
    want_acc = (
        sum(
            int(max(range(4), key=lambda i, ll=ll: ll[i]) == d.gold)
            for d, ll in zip(task.docs, res["loglikelihoods"], strict=False)
        )
        / 5
    )
    assert res["acc"] == pytest.approx(want_acc)


def test_trailing_space_of_the_context_moves_to_the_continuation():
    _, tok = tiny_model("gpt2", seed=0)
    a = encode_pair(tok, "Answer: ", "x")
    b = encode_pair(tok, "Answer:", " x")
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("family,task", [("gpt2", "smollm2-commonsense"), ("llama", "organism-skills")])
def test_own_evaluator_equals_lm_eval_on_a_local_task(family, task):
    from excise.evaluation.lmeval import evaluate_lmeval

    model, tok = tiny_model(family, seed=1)
    limit = 24
    theirs = evaluate_lmeval(model, tok, [task], limit=limit, log_samples=True)
    ours = mc_accuracy(model, tok, load_task(TASKS_DIR / f"{task}.jsonl"), limit=limit)
    assert theirs[task]["acc"] == ours["acc"]
    assert theirs[task]["acc_norm"] == ours["acc_norm"]
    for rec in theirs["_samples"][task]:
        lls = [float(x[0]) for x in rec["filtered_resps"]]
        assert lls == pytest.approx(ours["loglikelihoods"][rec["doc_id"]], rel=1e-5, abs=1e-4)


@pytest.mark.slow
def test_user_folders_of_jsonl_and_lmeval_yaml(tmp_path):
    from excise.evaluation.lmeval import evaluate_lmeval

    folder = tmp_path / "mine"
    folder.mkdir()
    rows = [{"question": f"Is {i} even?", "choices": ["yes", "no"], "answer": i % 2} for i in range(6)]
    (folder / "parity.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    yfolder = tmp_path / "yamls"
    yfolder.mkdir()
    (yfolder / "par.yaml").write_text(
        "task: parity_yaml\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'parity.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
        "doc_to_choice: choices\ndoc_to_target: answer\nmetric_list:\n  - metric: acc\n"
    )
    model, tok = tiny_model("opt", seed=0)
    res = evaluate_lmeval(model, tok, [str(folder), str(yfolder)])
    ours = evaluate_mc(model, tok, [str(folder)])
    assert res["parity"]["acc"] == ours["parity"]["acc"] == res["parity_yaml"]["acc"]
    assert res["parity"]["n"] == 6


@pytest.mark.parametrize(
    "row,msg",
    [
        ({"choices": ["a", "b"], "gold": 0}, "missing field\\(s\\) context"),
        ({"context": "q", "gold": 0}, "missing field\\(s\\) choices"),
        ({"context": "q", "choices": ["a", "b"]}, "missing field\\(s\\) gold"),
        ({"context": "q", "choices": ["a"], "gold": 0}, "at least 2 strings"),
        ({"context": "q", "choices": ["a", "b"], "gold": 2}, "index into choices"),
    ],
)
def test_task_file_without_needed_fields(tmp_path, row, msg):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(ExciseError, match=msg) as err:
        load_task(p)
    assert "bad.jsonl:1" in str(err.value) and "\n" not in str(err.value)


def test_unknown_task_and_empty_folder(tmp_path):
    with pytest.raises(ExciseError, match="unknown task 'nope'.*organism-skills"):
        resolve_tasks(["nope"])
    with pytest.raises(ExciseError, match="holds no .jsonl"):
        resolve_tasks([str(tmp_path)])


def test_lm_eval_missing_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "lm_eval" else real(n, *a))
    with pytest.raises(ExciseError, match=r"excise\[lmeval\]"):
        require_lmeval()
