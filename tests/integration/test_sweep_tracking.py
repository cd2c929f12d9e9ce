"""Real tracking sinks: Weights & Biases in offline mode and MLflow with a local file store.

Needs the ``tracking`` packages (``wandb``, ``mlflow-skinny``) installed, as in the dev set-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from excise.experiments import ExecutorConfig, load_document, run_sweep

pytestmark = pytest.mark.slow


def test_wandb_offline_and_mlflow_file_store_get_one_run_per_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import wandb  # noqa: F401 - a missing package must fail here, not be skipped

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    doc = load_document("quadratic", ["tracking.wandb.enabled=true", "tracking.mlflow.enabled=true"])
    out = tmp_path / "sw"
    res = run_sweep(doc, out, mode="points", executor=ExecutorConfig(kind="inprocess"))
    assert res.states == {"done": 3}
    logs = "".join(p.read_text() for p in out.glob("runs/*/run.log"))
    assert "tracking sink failed" not in logs, logs

    run_ids = sorted(p.name for p in (out / "runs").iterdir())
    offline = sorted((out / "wandb" / "wandb").glob("offline-run-*"))
    assert sorted(p.name.rsplit("-", 1)[-1] for p in offline) == run_ids
    blob = next(offline[0].glob("*.wandb")).read_bytes()
    assert b"loss" in blob and b"exact" in blob

    mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
    df = mlflow.search_runs(experiment_names=["quadratic"])
    assert sorted(df["tags.excise.run_id"]) == run_ids
    assert {"metrics.loss", "metrics.exact", "params.x", "params.y"} <= set(df.columns)
