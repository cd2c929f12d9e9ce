"""excise: find which parts of a neural network carry a behaviour, and cut, freeze or decompose them.

The public API, with the same nouns as the command line::

    load_model -> score -> top / set_difference -> prune / ablate -> evaluate_safety
"""

from __future__ import annotations

__version__ = "0.1.0"

from excise.core import Scores, Selection
from excise.errors import ExciseError
from excise.finetune import FinetuneArgs, finetune
from excise.interventions import ablate, prune
from excise.models import load_model, save_model
from excise.scoring import score
from excise.selection import intersection, jaccard, per_layer_counts, random_selection, set_difference, top, union

__all__ = [
    "ExciseError",
    "FinetuneArgs",
    "Scores",
    "Selection",
    "__version__",
    "ablate",
    "finetune",
    "intersection",
    "jaccard",
    "load_model",
    "per_layer_counts",
    "prune",
    "random_selection",
    "save_model",
    "score",
    "set_difference",
    "top",
    "union",
]
