"""Tokenise examples with the chat template, mask prompts out of the loss, pad into batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from excise.data.loading import Example
from excise.errors import ExciseError

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example; ``n_prompt`` leading tokens are not scored."""

    input_ids: tuple[int, ...]
    n_prompt: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Batch:
    """A right-padded batch. ``labels`` is ``IGNORE`` on prompt and padding positions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def loss_mask(self) -> torch.Tensor:
        """True where a token is scored (response tokens, not padding), aligned with ``input_ids``."""
        return self.labels != IGNORE

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def context_length(model_or_tokenizer: object) -> int | None:
    """The model's context length from its config, if it declares one."""
    cfg = getattr(model_or_tokenizer, "config", None)
    for key in ("max_position_embeddings", "n_positions", "seq_length"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def prompt_text(tokenizer: object, prompt: str, system: str | None = None) -> str:
    """The prompt rendered with the chat template (with the generation prompt), or as plain text."""
    if getattr(tokenizer, "chat_template", None):
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)  # type: ignore[attr-defined]
    return (f"{system}\n\n" if system else "") + prompt + "\n"


def encode_example(
    tokenizer: object, ex: Example, max_length: int | None = None, system: str | None = None
) -> Encoded:
    """Token ids for prompt (chat-formatted) + response + EOS; prompt tokens are masked from the loss.

    Without a response, every token of the prompt is scored (prompt-only calibration sets).
    """
    tok = tokenizer
    if ex.chat:
        ptext = prompt_text(tok, ex.prompt, system)
        has_template = bool(getattr(tok, "chat_template", None))
        p_ids = tok(ptext, add_special_tokens=not has_template)["input_ids"]  # type: ignore[operator]
    else:
        p_ids = []
    r_ids: list[int] = []
    if ex.response is not None:
        r_ids = list(tok(ex.response, add_special_tokens=not ex.chat and not p_ids)["input_ids"])  # type: ignore[operator]
        eos = getattr(tok, "eos_token_id", None)
        if eos is not None and ex.chat:
            r_ids.append(int(eos))
    if max_length is not None and len(p_ids) >= max_length and ex.response is not None:
        raise ExciseError(
            f"a prompt is {len(p_ids)} tokens long, more than the context of {max_length}; "
            "shorten it or drop it from the data set"
        )
    if ex.response is None:
        ids = list(p_ids)
        n_prompt = 0
        if max_length is not None and len(ids) > max_length:
            raise ExciseError(
                f"a prompt is {len(ids)} tokens long, more than the context of {max_length}; "
                "shorten it or drop it from the data set"
            )
    else:
        ids = list(p_ids) + r_ids
        n_prompt = len(p_ids)
        if max_length is not None and len(ids) > max_length:
            ids = ids[:max_length]
    return Encoded(tuple(int(i) for i in ids), n_prompt)


def encode(
    tokenizer: object, examples: Sequence[Example], max_length: int | None = None, system: str | None = None
) -> list[Encoded]:
    """Encode every example; checks lengths against the context before any model work."""
    out = []
    for i, ex in enumerate(examples):
        try:
            out.append(encode_example(tokenizer, ex, max_length, system))
        except ExciseError as err:  # say which example: its file and line, or its index
            raise ExciseError(f"{getattr(ex, 'source', '') or f'example {i + 1}'}: {err}") from None
    empty = sum(1 for e in out if len(e) - e.n_prompt == 0)
    if empty:
        raise ExciseError(f"{empty} example(s) have no scored tokens (empty response); remove them")
    return out


def collate(items: Sequence[Encoded], pad_token_id: int) -> Batch:
    """Right-pad to the longest item; padding has attention 0 and label ``IGNORE``."""
    T = max(len(e) for e in items)
    B = len(items)
    ids = torch.full((B, T), pad_token_id, dtype=torch.long)
    att = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    for b, e in enumerate(items):
        n = len(e)
        ids[b, :n] = torch.tensor(e.input_ids)
        att[b, :n] = 1
        labels[b, e.n_prompt : n] = ids[b, e.n_prompt : n]
    return Batch(ids, att, labels)


def iter_batches(
    encoded: Sequence[Encoded], batch_size: int, pad_token_id: int, sort_by_length: bool = False
) -> Iterator[Batch]:
    """Batches of ``batch_size``; optionally grouped by length to waste less on padding."""
    if batch_size < 1:
        raise ExciseError(f"batch size must be at least 1, got {batch_size}")
    order = list(range(len(encoded)))
    if sort_by_length:
        order.sort(key=lambda i: len(encoded[i]))
    for s in range(0, len(order), batch_size):
        yield collate([encoded[i] for i in order[s : s + batch_size]], pad_token_id)


def pad_id(tokenizer: object) -> int:
    pid = getattr(tokenizer, "pad_token_id", None)
    if pid is None:
        pid = getattr(tokenizer, "eos_token_id", None)
    return int(pid or 0)


def make_batches(
    tokenizer: object,
    examples: Sequence[Example],
    batch_size: int = 8,
    max_length: int | None = None,
    model: object | None = None,
    sort_by_length: bool = False,
) -> list[Batch]:
    """Encode and batch in one call; ``max_length`` defaults to the model's context."""
    if max_length is None and model is not None:
        max_length = context_length(model)
    enc = encode(tokenizer, examples, max_length)
    return list(iter_batches(enc, batch_size, pad_id(tokenizer), sort_by_length))


def shifted_token_nll(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL of next-token prediction (B, T-1) and its mask (labels shifted by one)."""
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tgt = batch.labels[:, 1:]
    mask = tgt != IGNORE
    nll = -lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return nll * mask, mask


def per_sample_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean NLL over each sample's scored tokens, shape (B,)."""
    nll, mask = shifted_token_nll(logits, batch)
    return nll.sum(1) / mask.sum(1).clamp_min(1)
