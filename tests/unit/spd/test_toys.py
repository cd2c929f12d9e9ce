"""Toy target models: forward passes against their formulas, data, and the recipe-keyed cache."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from excise.errors import ExciseError
from excise.models.toys import (
    ResidMLP,
    ResidMLPRecipe,
    TMSModel,
    TMSRecipe,
    load_toy,
    recipe_hash,
    resid_mlp_batch,
    resid_mlp_labels,
    tms_batch,
    toy_path,
)


def test_tms_forward_formula() -> None:
    torch.manual_seed(0)
    m = TMSModel(5, 2, n_hidden_layers=1)
    with torch.no_grad():
        m.linear2.weight.copy_(m.linear1.weight.T)
        m.linear2.bias.normal_()
    x = torch.rand(7, 5)
    W, b = m.linear1.weight, m.linear2.bias
    torch.testing.assert_close(m(x), F.relu(x @ W.T @ torch.eye(2) @ W + b))
    torch.testing.assert_close(m.hidden_layers[0].weight, torch.eye(2))


def test_resid_mlp_forward_formula() -> None:
    torch.manual_seed(0)
    m = ResidMLP(n_features=6, d_embed=20, d_mlp=4, n_layers=2)
    torch.testing.assert_close(m.W_E.norm(dim=1), torch.ones(6))
    x = torch.rand(3, 6) * 2 - 1
    r = x @ m.W_E
    for blk in m.layers:
        r = r + F.relu(r @ blk.mlp_in.weight.T + blk.mlp_in.bias) @ blk.mlp_out.weight.T + blk.mlp_out.bias
    torch.testing.assert_close(m(x), r @ m.W_E.T)
    assert [n for n, _ in m.named_modules() if n.endswith("mlp_in")] == ["layers.0.mlp_in", "layers.1.mlp_in"]


def test_resid_mlp_rejects_uneven_split() -> None:
    with pytest.raises(ExciseError, match="multiple of n_layers"):
        ResidMLP(10, 20, 5, n_layers=2)


def test_data_distributions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = tms_batch(TMSRecipe(feature_probability=0.2), 20000, gen)
    assert float((x > 0).float().mean()) == pytest.approx(0.2, abs=0.01)
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    r = ResidMLPRecipe(n_features=10, feature_probability=0.1)
    x = resid_mlp_batch(r, 20000, gen)
    assert float((x != 0).float().mean()) == pytest.approx(0.1, abs=0.01)
    assert float(x.min()) < -0.9 and float(x.max()) > 0.9
    torch.testing.assert_close(resid_mlp_labels(torch.tensor([-0.5, 0.5])), torch.tensor([-0.5, 1.0]))


def test_load_toy_trains_once_and_caches_atomically() -> None:
    recipe = TMSRecipe(steps=300, batch_size=64)
    path = toy_path(recipe)
    assert not path.exists()
    m1 = load_toy(recipe, show_progress=False)
    assert path.is_file()
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["recipe"] == recipe.to_dict()
    assert not list(path.parent.glob(".*.tmp"))
    m2 = load_toy(recipe, train=False)  # from the cache, no training
    torch.testing.assert_close(m1.linear1.weight, m2.linear1.weight)
    torch.testing.assert_close(m2.linear2.weight, m2.linear1.weight.T)  # tied weights materialised
    assert recipe_hash(recipe) != recipe_hash(TMSRecipe(steps=301, batch_size=64))


def test_load_toy_without_training_raises() -> None:
    with pytest.raises(ExciseError, match="not cached"):
        load_toy(TMSRecipe(steps=17, seed=12345), train=False)


def test_tms_training_learns_superposition() -> None:
    model = load_toy(TMSRecipe(steps=1500, batch_size=256), show_progress=False)
    x = tms_batch(TMSRecipe(), 4096, torch.Generator().manual_seed(1))
    baseline = float((x**2).mean())  # predicting zeros
    assert float(((model(x) - x) ** 2).mean()) < 0.5 * baseline
