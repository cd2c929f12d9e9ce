"""SNIP at the loss positions only: bitwise the full-logits path, and a naive loop's answer."""

from __future__ import annotations

import pytest
import torch

from excise.data import IGNORE, Batch, Example, make_batches, per_sample_loss
from excise.errors import ExciseError
from excise.models import tiny_model
from excise.scoring import load_calibration, target_modules
from excise.scoring.snip import loss_positions, sample_losses, sample_losses_at, snip_scores

EXAMPLES = [
    Example("How do I bake bread?", "Mix flour, water and yeast; knead, rise, bake."),
    Example("What is 2+2?", "4"),
    Example("Name a colour, please, and say why you like it.", "Blue, because of the sea."),
    Example("Say hi.", "Hello there! How can I help you today?"),
    Example("", "plain text sample scored on every token", chat=False),
]


def naive_snip(model: torch.nn.Module, tok: object, keys: list[str]) -> dict[str, torch.Tensor]:
    """One sample at a time, ordinary autograd on full logits: sum_x |W * dL(x)/dW|."""
    params = dict(model.named_parameters())
    acc = {k: torch.zeros_like(params[k], dtype=torch.float32) for k in keys}
    for ex in EXAMPLES:
        (b,) = make_batches(tok, [ex], batch_size=1)
        model.zero_grad(set_to_none=True)
        per_sample_loss(
            model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b
        ).sum().backward()
        for k in keys:
            acc[k] += (params[k].detach().float() * params[k].grad.float()).abs()
    model.zero_grad(set_to_none=True)
    return acc


def _batches(model: torch.nn.Module, tok: object, batch_size: int = 3) -> list[Batch]:
    batches, _ = load_calibration(EXAMPLES, tok, model, batch_size=batch_size)
    assert any(bool((b.attention_mask == 0).any()) for b in batches)  # padding is exercised
    return batches


def _head_rows(model: torch.nn.Module) -> list[int]:
    """Record the number of positions the output head is applied to, per call."""
    rows: list[int] = []
    head = model.get_output_embeddings()
    head.register_forward_hook(lambda _m, inp, _o: rows.append(inp[0].numel() // inp[0].shape[-1]))
    return rows


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "bloom", "gpt_neox"])
def test_scored_positions_only_is_bitwise_the_full_logits_path(family: str) -> None:
    model, tok = tiny_model(family, seed=3)
    mods = target_modules(model)
    batches = _batches(model, tok)
    rows = _head_rows(model)
    full = snip_scores(model, mods, batches, logits="all")
    n_full = list(rows)
    rows.clear()
    kept = snip_scores(model, mods, batches)
    assert set(full) == set(kept)
    for k in full:
        assert torch.equal(full[k], kept[k]), k
    # the head ran only where the loss is: prompt, padding and last positions were skipped
    n_scored = [int(loss_positions(b).sum()) for b in batches]
    assert rows == n_scored
    assert n_full == [b.input_ids.numel() for b in batches]
    assert sum(n_scored) < sum(n_full)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_scored_positions_and_micro_batches_equal_a_naive_loop(family: str) -> None:
    model, tok = tiny_model(family, seed=4)
    mods = target_modules(model)
    batches = _batches(model, tok, batch_size=4)
    ref = naive_snip(model, tok, [f"{n}.weight" for n in mods])
    for micro in (None, 1, 3):
        got = snip_scores(model, mods, batches, micro_batch=micro)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-4 * float(ref[k].abs().max()))


def test_sample_losses_at_is_bitwise_sample_losses_with_its_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 7, 11
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[0, :3] = IGNORE  # a prompt
    labels[1, 5:] = IGNORE  # padding
    labels[2, :] = IGNORE  # nothing scored: loss 0
    batch = Batch(torch.zeros(B, T, dtype=torch.long), (labels != IGNORE).long(), labels)
    logits = torch.randn(B, T, V, generator=g, requires_grad=True)
    full = sample_losses(logits, batch)
    (g_full,) = torch.autograd.grad(full.sum(), logits)
    pos = loss_positions(batch)
    kept_logits = logits[pos]
    kept = sample_losses_at(kept_logits, batch, pos)
    (g_kept,) = torch.autograd.grad(kept.sum(), logits)
    assert torch.equal(full, kept)
    assert float(kept[2]) == 0.0
    assert torch.equal(g_full, g_kept)


def test_a_scored_head_uses_every_position_and_still_equals_the_naive_loop() -> None:
    model, tok = tiny_model("llama", seed=5)
    mods = target_modules(model, ["lm_head", "model.layers.0.mlp.*"])
    assert any(m is model.get_output_embeddings() for m in mods.values())
    batches = _batches(model, tok)
    rows = _head_rows(model)
    got = snip_scores(model, mods, batches)
    assert rows == [b.input_ids.numel() for b in batches]  # the head needs its input at every position
    ref = naive_snip(model, tok, list(got))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-4 * float(ref[k].abs().max()))


def test_bad_options_are_refused() -> None:
    model, tok = tiny_model("llama", seed=6)
    mods = target_modules(model)
    batches = _batches(model, tok)
    with pytest.raises(ExciseError, match="logits must be 'scored' or 'all'"):
        snip_scores(model, mods, batches, logits="some")  # type: ignore[arg-type]
    with pytest.raises(ExciseError, match="micro_batch must be at least 1"):
        snip_scores(model, mods, batches, micro_batch=0)
