"""The analyzer workflow on the organism from the command line, and one freeze-attack run."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_excise_finetune_runs_the_analyzer_workflow_on_the_organism(organism, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from excise.cli import _mount_subapps, app, run_app
    from excise.core import Selection
    from excise.models import load_model

    aligned, _ = organism
    out = tmp_path / "frozen"
    _mount_subapps()
    argv = ["finetune", "organism", "--data", "utility", "--limit", "40", "--freeze-from", "snip"]
    argv += ["--freeze-data", "safety", "--freeze-samples", "16", "--sparsity", "0.05", "--max-steps", "6"]
    argv += ["--batch-size", "8", "--learning-rate", "1e-3", "--weight-decay", "0.1", "--reselect-every", "3"]
    assert run_app(app, [*argv, "--out", str(out)], prog_name="excise") == 0
    summary = json.loads((out / "analysis_summary.json").read_text())
    for key in (
        "original_safety_critical_count", "new_safety_critical_count", "total_neurons", "prune_method",
        "prune_data", "sparsity_ratio", "training_data", "num_epochs", "learning_rate", "jaccard",
        "intersection_count", "per_layer", "per_matrix_type", "config",
    ):  # fmt: skip
        assert key in summary, key
    assert summary["prune_data"] == "safety" and summary["training_data"] == "utility"
    assert [c["step"] for c in summary["frozen_changes"]] == [3]
    orig = Selection.load(out / "original_safety_masks")
    # about 5% of each matrix: floor(0.05 * numel) per matrix
    assert orig.count() == sum(int(0.05 * t.numel()) for t in orig.values())
    assert summary["original_safety_critical_count"] == orig.count()
    tuned, _ = load_model(out)
    before = dict(aligned.named_parameters())
    after = dict(tuned.named_parameters())
    # the first set was frozen until step 3: entries frozen in both sets never moved
    new_first = summary["frozen_changes"][0]
    assert new_first["count"] == orig.count()
    moved = sum(int((after[k].detach() != before[k].detach()).sum()) for k in orig)
    assert moved > 0


def test_one_freeze_attack_run_on_the_organism(tmp_path: Path) -> None:
    from excise.experiments.types.freeze_attack import FreezeAttackConfig, run_freeze_attack

    cfg = FreezeAttackConfig(
        n=10,
        q=0.3,
        freeze="safety",
        n_safety=16,
        rewind_fractions=(),
        eval={"limit": 12, "max_new_tokens": 32},
    )
    ctx = types.SimpleNamespace(logger=logging.getLogger("t"), artifacts_dir=tmp_path, run_id="t")
    m = run_freeze_attack(cfg, ctx)
    assert 0.0 <= m["asr"] <= 1.0 and 0.0 <= m["asr_before"] <= 1.0
    assert m["frozen_fraction"] == pytest.approx(0.3, abs=0.01)
    assert m["kl"] >= 0.0 and torch.isfinite(torch.tensor(m["kl"]))
    assert 0.0 <= m["jaccard_after"] <= 1.0
    assert (tmp_path / "analysis.json").is_file()
