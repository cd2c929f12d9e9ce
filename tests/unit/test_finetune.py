from __future__ import annotations

import pytest
import torch

from excise.core import Selection
from excise.data import Example
from excise.errors import ExciseError
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


def _adamw_steps_without_restore(weight_decay: float) -> tuple[dict, dict, Selection]:
    """Frozen gradients (exactly zero) but no restore: a plain AdamW loop over the tiny model."""
    from excise.data import make_batches, per_sample_loss
    from excise.finetune import FreezeCallback

    torch.manual_seed(0)
    model, tok = tiny_model("llama", seed=0)
    frozen = _random_selection(model, 0.3, seed=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    freeze = FreezeCallback(model, frozen, 0.0)  # gradient masks only; restore() is never called
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    (batch,) = make_batches(tok, DATA, batch_size=len(DATA))
    for _ in range(3):
        opt.zero_grad()
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        per_sample_loss(out.logits, batch).mean().backward()
        for k, m in frozen.items():
            grad = dict(model.named_parameters())[k].grad
            assert grad is not None and bool((grad[m] == 0).all())  # the gradient is exactly zero
        opt.step()
    freeze.remove()
    return before, dict(model.named_parameters()), frozen


def test_weight_decay_moves_zero_gradient_weights_without_restore() -> None:
    """The reason for the restore step: a zero gradient alone does not keep AdamW still.

    Decay 0: entries with an exactly zero gradient stay put; decay 0.1: they move. Only the decay
    differs, so it is the decay that moves them.
    """
    before, after, frozen = _adamw_steps_without_restore(0.0)
    for k, m in frozen.items():
        assert torch.equal(after[k].detach()[m], before[k][m]), k
    before, after, frozen = _adamw_steps_without_restore(0.1)
    moved = [k for k, m in frozen.items() if not torch.equal(after[k].detach()[m], before[k][m])]
    assert len(moved) == len(frozen)
    # decoupled decay with lr 1e-2, wd 0.1 over 3 steps shrinks each entry by (1 - 1e-3)^3
    for k, m in frozen.items():
        expected = before[k][m] * (1 - 1e-2 * 0.1) ** 3
        assert torch.allclose(after[k].detach()[m], expected, rtol=1e-5, atol=1e-7), k


def _update_ratio(update_scale: float) -> float:
    model, tok = tiny_model("llama", seed=0)
    frozen = _random_selection(model, 0.3, seed=1)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    finetune(
        model,
        tok,
        DATA,
        FinetuneArgs(
            epochs=2, learning_rate=1e-3, batch_size=4, weight_decay=0.1, seed=0, update_scale=update_scale
        ),
        frozen,
    )
    after = dict(model.named_parameters())
    sel = torch.cat([(after[k].detach() - before[k])[m].abs() for k, m in frozen.items()])
    rest = torch.cat([(after[k].detach() - before[k])[~m].abs() for k, m in frozen.items()])
    return float(sel.mean() / rest.mean())


@pytest.mark.parametrize("f", [0.5, 0.1, 0.01])
def test_partial_freezing_scales_the_update_under_adamw(f: float) -> None:
    """Mean |delta| of selected over unselected weights equals f (within 10%), weight decay on."""
    ratio = _update_ratio(f)
    assert abs(ratio / f - 1) < 0.10, (f, ratio)


def test_update_scale_outside_unit_interval_is_refused() -> None:
    model, tok = tiny_model("llama", seed=0)
    with pytest.raises(ExciseError, match=r"update_scale must be in \[0, 1\].*got 1.5"):
        finetune(model, tok, DATA, FinetuneArgs(update_scale=1.5), _random_selection(model, 0.3, 1))


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
