"""Run ids and the layout of a run folder (``SWEEP/runs/<run_id>/``).

``config.yaml`` holds the resolved config, whose hash is the run id; ``meta.json`` says which type
and sweep point made it (for display only). Nothing here takes a lock.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from excise.experiments.registry import ExperimentConfig
from excise.utils import atomic_write_text, stable_hash


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted JSON bytes (what checksums and lock files hold)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def config_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain JSON data (what the run id hashes)."""
    return config.model_dump(mode="json")


def run_id_for(config: ExperimentConfig | Mapping[str, Any]) -> str:
    """Deterministic run id: sha256 of the resolved config (16 hex digits)."""
    data = config_dict(config) if isinstance(config, ExperimentConfig) else dict(config)
    return stable_hash(data, length=16)


def runs_root(sweep_dir: Path) -> Path:
    """The folder holding one sub-folder per run."""
    return Path(sweep_dir) / "runs"


def config_yaml(config: Mapping[str, Any]) -> str:
    """The canonical YAML text of a resolved config."""
    return yaml.safe_dump(dict(config), sort_keys=True)


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Write config.yaml unless an identical one is already there."""
    path = run_dir / "config.yaml"
    text = config_yaml(config)
    with contextlib.suppress(OSError, ValueError):  # unreadable (e.g. not UTF-8): rewrite it
        if path.read_text(encoding="utf-8") == text:
            return
    atomic_write_text(path, text)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.yaml if it parses and hashes to the folder name, else None."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: a byte that is not UTF-8
        return None
    if not isinstance(data, dict) or run_id_for(data) != run_dir.name:
        return None
    return data


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's meta.json (type, label, sweep point), or {} if missing or unreadable."""
    try:
        data = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
