"""Optional tracking sinks (Weights & Biases, MLflow): imported lazily, called once per finished run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from excise.errors import ExciseError


def _require(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExciseError(
            f"tracking.{name}.enabled is true but '{name}' is not installed; "
            f"pip install 'excise[tracking]' (or {name}), or disable it"
        ) from None


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a.b": value} with scalar values."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are numbers (booleans excluded), as floats."""
    return {
        k: float(v)
        for k, v in flat_params(metrics).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def log_wandb(opts: Mapping[str, Any], spec: Any, metrics: Mapping[str, Any], sweep_dir: Path) -> None:
    """One W&B run per finished run: config, summary metrics; offline mode writes under the sweep."""
    wandb = _require("wandb")
    directory = Path(opts.get("dir") or sweep_dir / "wandb")
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=opts.get("project", "excise"),
        entity=opts.get("entity"),
        mode=opts.get("mode", "offline"),
        dir=str(directory),
        name=f"{spec.sweep_name}/{spec.label or spec.run_id}",
        id=spec.run_id,
        group=spec.sweep_name,
        config=flat_params(spec.config),
        reinit=True,
        resume="allow",
    )
    try:
        vals = numeric(metrics)
        run.log(vals)
        run.summary.update(vals)
    finally:
        run.finish()


def log_mlflow(opts: Mapping[str, Any], spec: Any, metrics: Mapping[str, Any], sweep_dir: Path) -> None:
    """One MLflow run per finished run; default store: a file store ``mlruns/`` in the sweep folder."""
    uri = opts.get("tracking_uri") or (sweep_dir / "mlruns").resolve().as_uri()
    if uri.startswith("file:"):
        # MLflow 3 refuses the file store unless asked; a local file store is what we want here
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow = _require("mlflow")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(opts.get("experiment") or spec.sweep_name or "excise")
    with mlflow.start_run(
        run_name=spec.label or spec.run_id, tags={"excise.run_id": spec.run_id, "excise.type": spec.type_name}
    ):
        mlflow.log_params(flat_params(spec.config))
        mlflow.log_metrics(numeric(metrics))


SINKS = {"wandb": log_wandb, "mlflow": log_mlflow}


def log_run(spec: Any, metrics: Mapping[str, Any], sweep_dir: Path) -> None:
    """Send a finished run to every enabled sink; one failing sink does not stop the others."""
    t = spec.tracking or {}
    errors = []
    for name, sink in SINKS.items():
        if (t.get(name) or {}).get("enabled"):
            try:
                sink(t[name], spec, metrics, sweep_dir)
            except Exception as err:  # noqa: BLE001 - reported together below
                errors.append(f"{name}: {type(err).__name__}: {err}")
    if errors:
        raise ExciseError("tracking failed for " + "; ".join(errors))
