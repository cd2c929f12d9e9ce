"""The ``head-pruning`` experiment type through the engine: a small sweep in-process, report with plot."""

from __future__ import annotations

import json

import pytest

from excise.experiments import ExecutorConfig, collect, load_document, run_sweep, write_report

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def test_head_pruning_sweep_reports_accuracy_against_fraction(tmp_path):
    doc_path = tmp_path / "hp.yaml"
    doc_path.write_text(
        "name: hp-test\n"
        "experiment:\n  type: head-pruning\n  model: tiny-opt\n  n_prompts: 8\n  max_length: 64\n"
        "  tasks: [organism-skills]\n  limit: 6\n"
        "default_sweep: g\n"
        "sweeps:\n  g:\n    grid:\n      fraction: [0.0, 0.5]\n      metric: [cosine, random]\n"
    )
    doc = load_document(str(doc_path))
    res = run_sweep(doc, tmp_path / "sw", executor=ExecutorConfig(kind="inprocess"))
    table = collect(tmp_path / "sw").frame
    assert len(table) == 4 and set(table["state"]) == {"done"}, table
    zero = table[table["fraction"] == 0.0]
    half = table[table["fraction"] == 0.5]
    assert set(zero["heads_pruned"]) == {0} and set(half["heads_pruned"]) == {4}
    assert len(set(zero["acc"])) == 1  # nothing pruned: every method gives the base accuracy
    assert set(table["method"]) == {"cosine/balanced/output", "random/balanced/output"}
    logs = list((tmp_path / "sw").rglob("pruning_log.json"))
    assert len(logs) == 4
    assert max(len(json.loads(p.read_text())["pruned"]) for p in logs) == 4
    report = write_report(tmp_path / "sw")
    assert not report.warnings
    assert [f.path.name for f in report.figures] == ["head_pruning_accuracy.png"]
    assert res is not None
