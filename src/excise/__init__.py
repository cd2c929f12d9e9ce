"""excise: find which parts of a neural network carry a behaviour, and cut, freeze or decompose them.

The public API, with the same nouns as the command line::

    load_model -> score -> top / set_difference -> prune / ablate -> evaluate_safety

Names are imported on first use (PEP 562), so ``import excise`` stays cheap for worker processes.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ExciseError": "excise.errors",
    "Scores": "excise.core",
    "Selection": "excise.core",
    "load_model": "excise.models",
    "save_model": "excise.models",
    "score": "excise.scoring",
    "top": "excise.selection",
    "set_difference": "excise.selection",
    "intersection": "excise.selection",
    "union": "excise.selection",
    "jaccard": "excise.selection",
    "per_layer_counts": "excise.selection",
    "random_selection": "excise.selection",
    "prune": "excise.interventions",
    "ablate": "excise.interventions",
    "finetune": "excise.finetune",
    "FinetuneArgs": "excise.finetune",
    "evaluate_safety": "excise.evaluation",
    "attack_success_rate": "excise.evaluation",
    "benign_accuracy": "excise.evaluation",
    "perplexity": "excise.evaluation",
    "decompose": "excise.spd",
    "run_spd_experiment": "excise.spd",
    "run_sweep": "excise.experiments",
    "write_report": "excise.experiments",
    "sweep_status": "excise.experiments",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

_ALIASES = {"run_spd_experiment": "run_experiment"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'excise' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
