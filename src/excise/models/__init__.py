"""Models: loading (HF folders, hub cache, GGUF, built-in names), architecture adapters, tiny random models.

Loading only: nothing here imports the pipeline. Built-in trained models live in ``excise.zoo``
and are named in ``BUILTIN_MODELS`` (resolved when loaded)."""

from excise.models.adapters import LAYOUTS, describe, get_layout, linear_layers
from excise.models.load import BUILTIN_MODELS, load_model, save_model
from excise.models.tiny import FAMILIES, byte_tokenizer, tiny_model

__all__ = [
    "BUILTIN_MODELS",
    "FAMILIES",
    "LAYOUTS",
    "byte_tokenizer",
    "describe",
    "get_layout",
    "linear_layers",
    "load_model",
    "save_model",
    "tiny_model",
]
