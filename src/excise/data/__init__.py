"""Data: loading prompt/response sets, chat templates, response masks, padded batches."""

from excise.data.batching import (
    IGNORE,
    Batch,
    Encoded,
    collate,
    context_length,
    encode,
    encode_example,
    iter_batches,
    make_batches,
    pad_id,
    per_sample_loss,
    prompt_text,
    shifted_token_nll,
)
from excise.data.loading import BUILTIN_SETS, Example, builtin_path, load_examples, write_jsonl

__all__ = [
    "BUILTIN_SETS",
    "IGNORE",
    "Batch",
    "Encoded",
    "Example",
    "builtin_path",
    "collate",
    "context_length",
    "encode",
    "encode_example",
    "iter_batches",
    "load_examples",
    "make_batches",
    "pad_id",
    "per_sample_loss",
    "prompt_text",
    "shifted_token_nll",
    "write_jsonl",
]
