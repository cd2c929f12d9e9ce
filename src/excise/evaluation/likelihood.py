"""Perplexity: exp of the mean token NLL over a text set, padding masked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from excise.data.batching import make_batches, shifted_token_nll
from excise.data.loading import Example, load_examples
from excise.utils import progress


@torch.no_grad()
def token_nll(
    model: Any,
    tokenizer: Any,
    data: str | Path | Sequence[Example] = "text",
    batch_size: int = 16,
    max_length: int | None = None,
) -> tuple[float, int]:
    """(sum of next-token NLL over all scored tokens, number of scored tokens)."""
    exs = load_examples(data) if isinstance(data, str | Path) else list(data)
    batches = make_batches(tokenizer, exs, batch_size=batch_size, max_length=max_length, model=model)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for b in progress(batches, desc="perplexity", total=len(batches)):
            b = b.to(device)
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
            nll, mask = shifted_token_nll(logits, b)
            total += float(nll.double().sum())
            count += int(mask.sum())
    finally:
        model.train(was_training)
    return total, count


def perplexity(
    model: Any,
    tokenizer: Any,
    data: str | Path | Sequence[Example] = "text",
    batch_size: int = 16,
    max_length: int | None = None,
) -> float:
    """exp(mean NLL per scored token) over the whole set (``text`` rows score every token)."""
    total, count = token_nll(model, tokenizer, data, batch_size, max_length)
    return math.exp(total / count) if count else float("nan")
