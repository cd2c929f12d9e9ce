"""Models: loading (HF folders, hub cache, GGUF, built-in names), architecture adapters, tiny random models.

Loading only: nothing here imports the pipeline. Built-in trained models live in ``excise.zoo``
and are named in ``BUILTIN_MODELS`` (resolved when loaded).

Names load on first use (``excise.utils.lazy_exports``).
"""

from __future__ import annotations

from excise.utils import lazy_exports

_EXPORTS = {
    "LAYOUTS": ".adapters",
    "describe": ".adapters",
    "get_layout": ".adapters",
    "linear_layers": ".adapters",
    "BUILTIN_MODELS": ".load",
    "load_model": ".load",
    "save_model": ".load",
    "FAMILIES": ".tiny",
    "byte_tokenizer": ".tiny",
    "tiny_model": ".tiny",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
