"""Shared plumbing of the weight-scoring methods: target layers, calibration batches, scored positions."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from excise.data import (
    IGNORE,
    Batch,
    Encoded,
    Example,
    context_length,
    encode,
    iter_batches,
    load_examples,
    pad_id,
)
from excise.errors import ExciseError
from excise.models.adapters import linear_layers, weight_in_axis
from excise.utils import stable_hash

DataLike = str | Path | Sequence[Example] | Sequence[Batch] | None


def target_modules(model: nn.Module, targets: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """The Linear / Conv1D modules to score: all but the output head, or those matching the globs."""
    if not targets:
        mods = linear_layers(model)
    else:
        every = linear_layers(model, include_head=True)
        mods = {n: m for n, m in every.items() if any(fnmatch.fnmatchcase(n, pat) for pat in targets)}
        if not mods:
            some = ", ".join(list(every)[:4])
            raise ExciseError(
                f"no linear layer matches the target pattern(s) {list(targets)}; names look like: {some} "
                "(use glob patterns such as '*.mlp.*' or 'model.layers.0.*')"
            )
    if not mods:
        raise ExciseError("the model has no linear layers to score")
    return mods


def weight_key(module_name: str) -> str:
    """The parameter name of a module's weight, e.g. ``model.layers.0.mlp.down_proj.weight``."""
    return f"{module_name}.weight"


def in_axes(modules: dict[str, nn.Module]) -> dict[str, int]:
    """Axis of each weight that indexes input features (1 for ``nn.Linear``, 0 for GPT-2 ``Conv1D``)."""
    return {weight_key(n): weight_in_axis(m) for n, m in modules.items()}


def _records_from_encoded(enc: Sequence[Encoded]) -> list[list[list[int]]]:
    return [[list(e.input_ids), [IGNORE] * e.n_prompt + list(e.input_ids[e.n_prompt :])] for e in enc]


def _records_from_batches(batches: Sequence[Batch]) -> list[list[list[int]]]:
    out = []
    for b in batches:
        for i in range(len(b)):
            keep = b.attention_mask[i].bool()
            out.append([b.input_ids[i][keep].tolist(), b.labels[i][keep].tolist()])
    return out


def load_calibration(
    data: DataLike,
    tokenizer: Any,
    model: nn.Module,
    batch_size: int = 8,
    max_length: int | None = None,
) -> tuple[list[Batch], str]:
    """Batches of a built-in set, file, list of ``Example`` or list of ``Batch``, and their fingerprint.

    The fingerprint hashes the token ids and loss labels of every sample (so it covers the tokenizer,
    chat template and ``max_length``), not the batching.
    """
    if batch_size < 1:
        raise ExciseError(f"batch size must be at least 1, got {batch_size}")
    if data is None:
        raise ExciseError(
            "this scoring method needs calibration data; pass a data file or a built-in set name"
        )
    if isinstance(data, str | Path):
        data = load_examples(data)
    items = list(data)
    if not items:
        raise ExciseError("the calibration data is empty; it needs at least one example")
    if all(isinstance(x, Batch) for x in items):
        batches = [x for x in items if isinstance(x, Batch)]
        return batches, stable_hash(_records_from_batches(batches), length=24)
    if not all(isinstance(x, Example) for x in items):
        raise ExciseError(
            "calibration data must be a path, a built-in set name, or a list of Example or of Batch"
        )
    examples = [x for x in items if isinstance(x, Example)]
    if max_length is None:
        max_length = context_length(model)
    enc = encode(tokenizer, examples, max_length)
    batches = list(iter_batches(enc, batch_size, pad_id(tokenizer), sort_by_length=True))
    return batches, stable_hash(_records_from_encoded(enc), length=24)


def scored_positions(batch: Batch, convention: str = "next") -> torch.Tensor:
    """(B, T) bool positions of a batch's scored tokens; prompt and padding positions are excluded.

    ``"response"``: positions whose own token is a response token (``labels != -100``; the convention
    of Wanda's reference code for layer statistics). ``"next"``: positions whose next-token
    prediction is in the loss (labels shifted by one); the last position never predicts a scored token.
    """
    if convention == "response":
        return batch.labels != IGNORE
    if convention != "next":
        raise ExciseError(f"unknown position convention '{convention}'; choose 'response' or 'next'")
    pos = torch.zeros_like(batch.labels, dtype=torch.bool)
    pos[:, :-1] = batch.labels[:, 1:] != IGNORE
    return pos


def weight_of(module: nn.Module) -> torch.Tensor:
    """The ``weight`` parameter of a Linear / Conv1D module."""
    w = module.weight
    if not isinstance(w, torch.Tensor):
        raise ExciseError(f"module {type(module).__name__} has no weight tensor")
    return w


def input_embeddings(model: nn.Module) -> nn.Module | None:
    """``model.get_input_embeddings()`` where the model has it."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    return emb if isinstance(emb, nn.Module) else None


def input_device(model: nn.Module) -> torch.device:
    """Device of the input embeddings (where token ids must go)."""
    emb = input_embeddings(model)
    w = getattr(emb, "weight", None)
    if isinstance(w, torch.Tensor):
        return w.device
    return next(model.parameters()).device


def accepts_logits_to_keep(model: nn.Module) -> bool:
    """True when ``model.forward`` takes ``logits_to_keep`` (so the head can be skipped)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put the model in eval mode (no dropout) for the block and restore its training flag."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)
