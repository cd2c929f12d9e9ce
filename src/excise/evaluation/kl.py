"""Next-token KL divergence of an intervened model from the original on harmless prompts.

The original model answers each harmless prompt greedily; the answers are then scored by
teacher forcing under both models. At every response position t (the first one predicts the
first response token) the divergence is KL(P_orig(. | x_<t) || P_new(. | x_<t)) over the whole
vocabulary. Reported: the mean over prompts at the first response token, and the mean over all
response positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from excise.data.batching import pad_id
from excise.errors import ExciseError
from excise.evaluation.generation import encode_prompts, generate


@torch.no_grad()
def response_logprobs(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> list[torch.Tensor]:
    """Per pair, the (len(response) + 1, V) next-token log-probabilities at the response positions.

    Row 0 predicts the first response token (from the last prompt token); row t the token after
    response token t-1; the last row predicts what follows the response. Right padding, so the
    positions of every real token are those of the unpadded sequence.
    """
    if len(prompt_ids) != len(response_ids):
        raise ExciseError(f"{len(prompt_ids)} prompts but {len(response_ids)} responses; they must pair up")
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    out: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(prompt_ids), batch_size):
            ps, rs = prompt_ids[s : s + batch_size], response_ids[s : s + batch_size]
            seqs = [list(p) + list(r) for p, r in zip(ps, rs, strict=True)]
            if any(len(p) == 0 for p in ps):
                raise ExciseError("an empty prompt has no position to predict the response from")
            T = max(len(x) for x in seqs)
            ids = torch.full((len(seqs), T), pad, dtype=torch.long)
            att = torch.zeros((len(seqs), T), dtype=torch.long)
            for b, x in enumerate(seqs):
                ids[b, : len(x)] = torch.tensor(x, dtype=torch.long)
                att[b, : len(x)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()
            lp = torch.log_softmax(logits, dim=-1).cpu()
            for b, (p, r) in enumerate(zip(ps, rs, strict=True)):
                out.append(lp[b, len(p) - 1 : len(p) + len(r)].clone())
    finally:
        model.train(was_training)
    return out


def kl_rows(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) per row of two log-probability tables, in nats (float64)."""
    p = p_log.double()
    return (p.exp() * (p - q_log.double())).sum(-1).clamp(min=0.0)


@dataclass
class KLReference:
    """The original model's answers and next-token distributions on harmless prompts."""

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    logprobs: list[torch.Tensor]
    batch_size: int = 16

    @classmethod
    def build(
        cls,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[str],
        max_new_tokens: int = 32,
        batch_size: int = 16,
    ) -> KLReference:
        """Answer ``prompts`` greedily with the (original) model and keep its distributions."""
        if not prompts:
            raise ExciseError("KL needs at least one harmless prompt")
        answers = [
            o[0]
            for o in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, desc="KL: answers")
        ]
        p_ids = encode_prompts(tokenizer, prompts)
        r_ids = [list(tokenizer(a, add_special_tokens=False)["input_ids"])[:max_new_tokens] for a in answers]
        return cls(p_ids, r_ids, response_logprobs(model, tokenizer, p_ids, r_ids, batch_size), batch_size)

    def kl_from(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """KL of ``model`` from the original: at the first response token, and over the response."""
        new = response_logprobs(model, tokenizer, self.prompt_ids, self.response_ids, self.batch_size)
        first, total, count = 0.0, 0.0, 0
        for ref, lp, r in zip(self.logprobs, new, self.response_ids, strict=True):
            k = kl_rows(ref[: len(r) + 1], lp[: len(r) + 1])
            first += float(k[0])
            positions = k[: max(len(r), 1)]  # the response tokens (the first row when it is empty)
            total += float(positions.sum())
            count += int(positions.numel())
        return {"kl_first_token": first / len(self.logprobs), "kl_mean": total / max(count, 1)}
