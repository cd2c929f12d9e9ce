"""The refusal direction (Arditi et al. 2024): one residual-stream direction that mediates refusal.

Candidates: r_{l,p} = mean over harmful prompts - mean over harmless prompts of the residual stream
at the input of decoder layer l (``resid_pre``), at post-instruction position p (the last
``positions`` prompt tokens, i.e. the chat template's turn to the assistant). Selection: for every
candidate with l < max_layer_fraction * n_layers, ablate r_hat = r / ||r|| from every residual
writer (x <- x - r_hat r_hat^T x on the outputs of the embeddings, attention and MLP outputs) and
measure, at the last prompt token, the refusal score on harmful prompts (log-odds of the refusal
tokens: by default the first token of each harmful response) and the KL from the original
next-token distribution on harmless prompts; the chosen candidate lowers the refusal score most
among those with KL <= kl_threshold.

Scores (unit ``rank``): ``refusal_direction`` (L_c x P): the drop of the refusal score when the
candidate is ablated (higher = more important; NaN: not evaluated). Companions: ``direction``
(``selected``: the unit direction; ``candidates``: every raw difference of means, L x P x d) and
``filter`` (``kl`` and ``refusal``: each evaluated candidate's KL on harmless and refusal score).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from excise.core import Scores
from excise.data import IGNORE, Batch
from excise.errors import ExciseError
from excise.models.adapters import decoder_layers, residual_writers
from excise.scoring.base import eval_mode, input_device
from excise.utils import progress

DIRECTION_DOC = (
    "'selected': the chosen unit refusal direction (d,); 'candidates': mean(harmful) - mean(harmless) "
    "residual at the input of layer l, position p (L x P x d; p indexes the last P prompt tokens)"
)
FILTER_DOC = (
    "per evaluated candidate (L_c x P): 'kl': mean KL(original || ablated) at the last prompt token of the "
    "harmless prompts; 'refusal': mean refusal log-odds on the harmful prompts with the candidate ablated"
)


def prompt_lengths(batch: Batch) -> torch.Tensor:
    """Tokens before the first response token of each row (the prompt, chat template included)."""
    resp = batch.labels != IGNORE
    if not bool(resp.any(1).all()):
        raise ExciseError("every example needs a response (its prompt end is where the response starts)")
    return resp.int().argmax(1)


def _prompt_part(batch: Batch) -> tuple[Batch, torch.Tensor]:
    """The batch cut to its longest prompt (causal: the prompt positions do not see what follows)."""
    n = prompt_lengths(batch)
    t = int(n.max())
    return Batch(batch.input_ids[:, :t], batch.attention_mask[:, :t], batch.labels[:, :t]), n


def residual_candidates(
    model: nn.Module, batches: Sequence[Batch], positions: int
) -> tuple[torch.Tensor, int]:
    """Sum over prompts of the input of every decoder layer at the last ``positions`` prompt tokens.

    Returns (L, P, d) float64 sums and the number of prompts.
    """
    layers = decoder_layers(model)
    sums: list[torch.Tensor | None] = [None] * len(layers)
    state: dict[str, torch.Tensor] = {}

    def make(i: int) -> Any:
        def pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = args[0] if args else kwargs["hidden_states"]
            rows, cols = state["rows"].to(x.device), state["cols"].to(x.device)
            got = x[rows, cols].double().sum(0)  # (P, d)
            sums[i] = got if sums[i] is None else sums[i] + got

        return pre

    dev = input_device(model)
    n = 0
    handles = [layer.register_forward_pre_hook(make(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with eval_mode(model), torch.no_grad():
            for whole in progress(batches, desc="refusal direction: means", total=len(batches)):
                batch, lengths = _prompt_part(whole)
                if int(lengths.min()) < positions:
                    raise ExciseError(
                        f"a prompt has {int(lengths.min())} tokens, fewer than positions={positions}; "
                        "lower positions"
                    )
                offs = torch.arange(-positions, 0)
                state["rows"] = torch.arange(len(batch))[:, None].expand(-1, positions)
                state["cols"] = lengths[:, None] + offs[None, :]
                model(
                    input_ids=batch.input_ids.to(dev),
                    attention_mask=batch.attention_mask.to(dev),
                    use_cache=False,
                )
                n += len(batch)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([s for s in sums if s is not None]), n


@contextmanager
def direction_ablated(model: nn.Module, direction: torch.Tensor) -> Iterator[None]:
    """Inside the block every residual writer's output x becomes x - r_hat (r_hat . x) (r_hat = r / ||r||)."""
    writers = residual_writers(model)
    r = direction.detach().double()
    r = r / r.norm()
    cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def hook(_m: nn.Module, _i: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        key = (out.device, out.dtype)
        if key not in cache:
            cache[key] = r.to(device=out.device, dtype=out.dtype)
        rr = cache[key]
        return out - (out @ rr)[..., None] * rr

    handles = [m.register_forward_hook(hook) for m in writers.values()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def last_prompt_log_probs(model: nn.Module, batches: Sequence[Batch]) -> torch.Tensor:
    """log p(next token) at the last prompt token of every example, (N, V) float32 on the CPU.

    The output head runs on that one position only (a pre-hook hands it the gathered rows).
    """
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(head, nn.Module):
        raise ExciseError("the refusal direction needs a model with an output head (get_output_embeddings)")
    dev = input_device(model)
    state: dict[str, torch.Tensor] = {}

    def pre(_m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0]
        rows = torch.arange(x.shape[0], device=x.device)
        return (x[rows, state["last"].to(x.device)][:, None, :], *inputs[1:])

    out = []
    handle = head.register_forward_pre_hook(pre)
    try:
        with eval_mode(model), torch.no_grad():
            for whole in batches:
                batch, lengths = _prompt_part(whole)
                state["last"] = lengths - 1
                logits = model(
                    input_ids=batch.input_ids.to(dev),
                    attention_mask=batch.attention_mask.to(dev),
                    use_cache=False,
                ).logits
                out.append(torch.log_softmax(logits[:, -1].float(), -1).cpu())
    finally:
        handle.remove()
    return torch.cat(out)


def refusal_log_odds(logp: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """Mean over prompts of log(P / (1 - P)), P = the probability of any refusal token."""
    lp = torch.logsumexp(logp[:, list(tokens)].double(), -1)
    lp = lp.clamp(max=-1e-12)
    return (lp - torch.log(-torch.expm1(lp))).mean()


def mean_kl(ref: torch.Tensor, logp: torch.Tensor) -> float:
    """Mean over prompts of KL(ref || p) from log-probabilities."""
    r = ref.double()
    return float((r.exp() * (r - logp.double())).sum(-1).mean())


def refusal_tokens(tokenizer: Any, batches: Sequence[Batch], words: Sequence[str] | None) -> list[int]:
    """Token ids of the refusal score: the first token of each given word, or of each response."""
    if words:
        ids = []
        for w in words:
            enc = tokenizer.encode(w, add_special_tokens=False)
            if not enc:
                raise ExciseError(f"refusal token {w!r} encodes to nothing")
            ids.append(int(enc[0]))
        return sorted(set(ids))
    firsts: set[int] = set()
    for b in batches:
        n = prompt_lengths(b)
        firsts.update(int(b.input_ids[i, n[i]]) for i in range(len(b)))
    return sorted(firsts)


def refusal_direction_scores(model: nn.Module, tokenizer: Any, harmful: Sequence[Batch], cfg: Any) -> Scores:
    """Every candidate direction, the chosen one, and the selection figures (see the module docstring)."""
    from excise.scoring.base import load_calibration

    residual_writers(model)  # an unsupported family fails before any forward pass
    if not harmful:
        raise ExciseError("the refusal direction needs harmful prompts (with responses); got none")
    harmless, _ = load_calibration(cfg.harmless, tokenizer, model, batch_size=8)
    if not harmless:
        raise ExciseError(
            f"the harmless set '{cfg.harmless}' is empty; the refusal direction needs harmless prompts"
        )
    shortest = min(int(prompt_lengths(b).min()) for b in (*harmful, *harmless))  # before any forward
    if shortest < cfg.positions:
        raise ExciseError(
            f"a prompt has {shortest} tokens, fewer than positions={cfg.positions}; lower positions"
        )
    tokens = refusal_tokens(tokenizer, harmful, cfg.refusal_tokens)
    n_layers = len(decoder_layers(model))
    n_cand = max(1, math.ceil(cfg.max_layer_fraction * n_layers - 1e-9))  # layers l < fraction * L
    P = cfg.positions

    s_harm, n_harm = residual_candidates(model, harmful, P)
    s_safe, n_safe = residual_candidates(model, harmless, P)
    cands = s_harm / n_harm - s_safe / n_safe  # (L, P, d)

    base_harm = last_prompt_log_probs(model, harmful)
    base_safe = last_prompt_log_probs(model, harmless)
    baseline = float(refusal_log_odds(base_harm, tokens))
    drop = torch.full((n_cand, P), float("nan"))
    kl = torch.full((n_cand, P), float("nan"))
    after = torch.full((n_cand, P), float("nan"))
    grid = [(layer, p) for layer in range(n_cand) for p in range(P)]
    for layer, p in progress(grid, desc="refusal direction: selection", total=len(grid)):
        r = cands[layer, p]
        if float(r.norm()) == 0.0:
            continue
        with direction_ablated(model, r):
            lh = last_prompt_log_probs(model, harmful)
            ls = last_prompt_log_probs(model, harmless)
        after[layer, p] = float(refusal_log_odds(lh, tokens))
        drop[layer, p] = baseline - after[layer, p]
        kl[layer, p] = mean_kl(base_safe, ls)
    ok = (kl <= cfg.kl_threshold) & torch.isfinite(drop)
    if not bool(ok.any()):
        best = torch.nan_to_num(kl, nan=float("inf"))
        i = int(best.argmin())
        raise ExciseError(
            f"no refusal-direction candidate keeps the KL on harmless prompts <= {cfg.kl_threshold} "
            f"(smallest: {float(best.flatten()[i]):.3g} at layer {i // P}, position {i % P - P}); "
            "raise kl_threshold or give more data"
        )
    pick = int(torch.where(ok, drop, torch.tensor(float("-inf"))).argmax())
    layer, p = pick // P, pick % P
    r = cands[layer, p]
    meta = {
        "layer": layer,
        "position": p - P,
        "candidate_layers": n_cand,
        "n_layers": n_layers,
        "baseline_refusal": baseline,
        "refusal_after": float(after[layer, p]),
        "kl": float(kl[layer, p]),
        "refusal_tokens": tokens,
        "n_harmful": n_harm,
        "n_harmless": n_safe,
        "harmless": cfg.harmless,
    }
    return Scores(
        {"refusal_direction": drop},
        unit="rank",
        meta=meta,
        companions={
            "direction": {"selected": (r / r.norm()).float(), "candidates": cands.float()},
            "filter": {"kl": kl, "refusal": after},
        },
        companion_doc={"direction": DIRECTION_DOC, "filter": FILTER_DOC},
    )
