"""excise: find which parts of a neural network carry a behaviour, and cut, freeze or decompose them."""

from __future__ import annotations

__version__ = "0.1.0"

from excise.core import Scores, Selection
from excise.errors import ExciseError

__all__ = ["ExciseError", "Scores", "Selection", "__version__"]
