"""Batched generation with left padding: greedy, or sampled ``n`` times per prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from excise.data.batching import context_length, pad_id, prompt_text
from excise.errors import ExciseError
from excise.utils import progress


def encode_prompts(
    tokenizer: Any, prompts: Sequence[str], system: str | None = None, chat: bool = True
) -> list[list[int]]:
    """Token ids of each prompt rendered with the chat template (and system prompt) when there is one."""
    has_template = bool(getattr(tokenizer, "chat_template", None)) and chat
    texts = [prompt_text(tokenizer, p, system) if chat else p for p in prompts]
    enc = tokenizer(list(texts), add_special_tokens=not has_template)["input_ids"]
    return [list(map(int, x)) for x in enc]


def left_pad(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids, attention_mask) so that every prompt ends at the last column."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    att = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, s in enumerate(seqs):
        if s:
            ids[b, T - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            att[b, T - len(s) :] = 1
    return ids, att


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    system: str | None = None,
    max_new_tokens: int = 64,
    sample: bool = False,
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    chat: bool = True,
    desc: str = "generate",
) -> list[list[str]]:
    """Completions of each prompt: a list of ``n`` strings per prompt (``n`` is 1 when greedy).

    Prompts are sorted by length into left-padded batches; sampling is seeded per batch, so the
    result does not depend on the global random state.
    """
    if not prompts:
        return []
    if n < 1:
        raise ExciseError(f"the number of samples per prompt must be at least 1, got {n}")
    if not sample and n != 1:
        raise ExciseError("greedy decoding gives one completion per prompt; pass sample=True for n > 1")
    if batch_size < 1:
        raise ExciseError(f"batch size must be at least 1, got {batch_size}")
    encoded = encode_prompts(tokenizer, prompts, system, chat)
    ctx = context_length(model)
    longest = max(len(e) for e in encoded)
    if ctx is not None and longest + max_new_tokens > ctx:
        raise ExciseError(
            f"a prompt has {longest} tokens; with {max_new_tokens} new tokens that exceeds the context of {ctx}; "
            "shorten the prompts or lower max_new_tokens"
        )
    pad = pad_id(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    starts = list(range(0, len(order), batch_size))
    try:
        for bi, s in enumerate(progress(starts, desc=desc, total=len(starts))):
            idx = order[s : s + batch_size]
            ids, att = left_pad([encoded[i] for i in idx], pad)
            kwargs: dict[str, Any] = {
                "input_ids": ids.to(device),
                "attention_mask": att.to(device),
                "max_new_tokens": max_new_tokens,
                "pad_token_id": pad,
                "eos_token_id": eos,
                "do_sample": sample,
            }
            if sample:
                kwargs.update(temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
                torch.manual_seed(seed * 1_000_003 + bi)
                gen = model.generate(**kwargs)
            new = gen[:, ids.shape[1] :].cpu()
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for j, i in enumerate(idx):
                out[i] = [t.strip() for t in texts[j * n : (j + 1) * n]]
    finally:
        model.train(was_training)
    return out
