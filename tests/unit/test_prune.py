"""prune / ablate: zeros where selected, exact restoration, a reload with plain transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from excise.core import Selection
from excise.errors import ExciseError
from excise.interventions import ablate, prune
from excise.models import save_model, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def random_mask(model: torch.nn.Module, fraction: float = 0.2, seed: int = 0) -> Selection:
    g = torch.Generator().manual_seed(seed)
    masks = {
        n: torch.rand(p.shape, generator=g) < fraction
        for n, p in model.named_parameters()
        if n.endswith(".weight") and p.dim() == 2 and "embed" not in n
    }
    return Selection(masks, unit="weight", meta={"rule": "test"})


def bits(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().view(torch.int32) for n, p in model.named_parameters()}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_prune_zeroes_exactly_the_mask(family: str) -> None:
    model, _ = tiny_model(family, seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sel = random_mask(model)
    n = prune(model, sel)
    assert n == sum(int(m.sum()) for m in sel.values()) > 0
    for name, p in model.named_parameters():
        if name in sel:
            m = sel[name]
            assert (p.detach()[m] == 0).all()
            assert torch.equal(p.detach()[~m], before[name][~m])
        else:
            assert torch.equal(p.detach(), before[name])


def test_prune_restores_from_base() -> None:
    base, _ = tiny_model("llama", seed=1)
    model, _ = tiny_model("llama", seed=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sel = random_mask(model, seed=3)
    prune(model, sel, base=base)
    base_p = dict(base.named_parameters())
    for name, m in sel.items():
        p = dict(model.named_parameters())[name].detach()
        assert torch.equal(p[m], base_p[name].detach()[m])
        assert torch.equal(p[~m], before[name][~m])


def test_ablate_is_bit_identical_after() -> None:
    model, tok = tiny_model("llama", seed=4)
    sel = random_mask(model, 0.3)
    key = next(iter(sel))
    with torch.no_grad():  # a negative zero and a NaN inside the mask must come back bit for bit
        w = dict(model.named_parameters())[key]
        idx = torch.nonzero(sel[key].flatten())[:2].flatten()
        w.view(-1)[idx[0]] = -0.0
        w.view(-1)[idx[1]] = float("nan")
    ids = torch.tensor([[1, 5, 9, 30, 40]])
    before = bits(model)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with ablate(model, sel) as n:
            assert n == sel.count()
            assert all((dict(model.named_parameters())[k].detach()[m] == 0).all() for k, m in sel.items())
            changed = model(input_ids=ids).logits
    assert not torch.allclose(changed, ref, equal_nan=True)
    after = bits(model)
    assert all(torch.equal(after[k], before[k]) for k in before)

    with pytest.raises(RuntimeError, match="boom"), ablate(model, sel):
        raise RuntimeError("boom")
    after = bits(model)
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_pruned_model_reloads_with_plain_transformers(family: str, tmp_path: Path) -> None:
    model, tok = tiny_model(family, seed=5)
    sel = random_mask(model, 0.25)
    prune(model, sel)
    out = save_model(model, tok, tmp_path / "pruned")
    again = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    params = dict(again.named_parameters())
    for name, m in sel.items():
        assert (params[name].detach()[m] == 0).all()
        assert torch.equal(params[name].detach(), dict(model.named_parameters())[name].detach())


def test_mismatched_selection_is_an_error() -> None:
    model, _ = tiny_model("llama")
    with pytest.raises(ExciseError, match="not parameters of this model"):
        prune(model, Selection({"transformer.h.0.attn.c_attn.weight": torch.ones(2, 2, dtype=torch.bool)}))
    key = "model.layers.0.mlp.down_proj.weight"
    with pytest.raises(ExciseError, match="has shape"):
        prune(model, Selection({key: torch.ones(2, 2, dtype=torch.bool)}))
    with pytest.raises(ExciseError, match="selection of weights"):
        prune(model, Selection({key: torch.ones(2, 2, dtype=torch.bool)}, unit="head"))
