from __future__ import annotations

import torch

from excise.core import Selection
from excise.data import Example
from excise.finetune import FinetuneArgs, finetune
from excise.models import linear_layers, tiny_model

DATA = [
    Example(f"say {w}", f"{w} {w} {w}")
    for w in ["cat", "dog", "bird", "fish", "frog", "lion", "wolf", "bear"]
]


def _random_selection(model: torch.nn.Module, frac: float, seed: int) -> Selection:
    g = torch.Generator().manual_seed(seed)
    return Selection(
        {
            f"{n}.weight": torch.rand(m.weight.shape, generator=g) < frac
            for n, m in linear_layers(model).items()
        }
    )


def test_frozen_weights_bit_identical_under_adamw_weight_decay() -> None:
    model, tok = tiny_model("llama", seed=0)
    frozen = _random_selection(model, 0.3, seed=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    finetune(
        model,
        tok,
        DATA,
        FinetuneArgs(epochs=2, learning_rate=1e-2, batch_size=4, weight_decay=0.1, seed=0),
        frozen,
    )
    after = dict(model.named_parameters())
    moved = 0
    for k, m in frozen.items():
        assert torch.equal(after[k].detach()[m], before[k][m]), k  # bit-identical
        moved += int((after[k].detach()[~m] != before[k][~m]).sum())
    assert moved > 0  # the rest did train


def test_weight_decay_moves_zero_gradient_weights_without_restore() -> None:
    """The reason for the restore step: a zero gradient alone does not keep AdamW still."""
    model, tok = tiny_model("llama", seed=0)
    frozen = _random_selection(model, 0.3, seed=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    finetune(
        model,
        tok,
        DATA,
        FinetuneArgs(epochs=1, learning_rate=1e-2, batch_size=4, weight_decay=0.1, grad_scale=1e-12),
        frozen,
    )
    after = dict(model.named_parameters())
    assert any(not torch.equal(after[k].detach()[m], before[k][m]) for k, m in frozen.items())


def test_training_lowers_the_loss() -> None:
    from excise.data import make_batches, per_sample_loss

    model, tok = tiny_model("gpt2", seed=0)
    (batch,) = make_batches(tok, DATA, batch_size=len(DATA))

    def loss() -> float:
        with torch.no_grad():
            return float(
                per_sample_loss(
                    model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch
                ).mean()
            )

    l0 = loss()
    finetune(model, tok, DATA, FinetuneArgs(epochs=3, learning_rate=5e-3, batch_size=4))
    assert loss() < l0 - 0.5
