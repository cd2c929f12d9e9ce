"""Every unit kind through the same contracts: registry -> Scores -> Selection -> intervention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from excise.core import Scores, Selection
from excise.data import Example
from excise.errors import ExciseError
from excise.interventions import ablate, ablate_subcomponents, prune
from excise.models import linear_layers, tiny_model
from excise.scoring import METHODS, score
from excise.selection import count_for, set_difference, top

EXAMPLES = [
    Example("How do I bake bread?", "Mix flour, water and yeast; knead, rise, bake."),
    Example("Say hi.", "Hello there! How can I help you today?"),
    Example("What is 2+2?", "4"),
]


def test_every_registered_method_declares_a_known_unit_and_a_config() -> None:
    for name, m in METHODS.items():
        assert m.name == name
        assert m.unit in ("weight", "neuron", "rank", "head", "feature", "subcomponent")
        assert m.config().method == name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fraction", "n", "want"),
    [(0.99999999, 10, 9), (0.29, 100, 29), (0.07, 100, 7), (0.5, 3, 1), (1.0, 7, 7), (1 / 3, 9, 3)],
)
def test_count_for_is_the_floor_of_the_decimal_product(fraction: float, n: int, want: int) -> None:
    assert count_for(fraction, n) == want


def test_neuron_scores_select_and_prune_whole_rows_and_bias() -> None:
    model, tok = tiny_model("gpt2", seed=0)  # Conv1D (in, out) and biases
    s = score(model, tok, EXAMPLES, "wanda-rows", batch_size=2, use_cache=False)
    sel = top(s, fraction=0.25, scope="matrix")
    assert sel.unit == "neuron"
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    mods = linear_layers(model)
    with ablate(model, sel):
        for key, m in sel.items():
            mod = mods[key.removesuffix(".weight")]
            w = mod.weight.detach()
            cols = m.nonzero().flatten()  # Conv1D: an output neuron is a column
            assert bool((w[:, cols] == 0).all()) and bool((mod.bias.detach()[cols] == 0).all())
            keep = (~m).nonzero().flatten()
            assert torch.equal(w[:, keep], before[key][:, keep])
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())
    n = prune(model, sel)
    rows = sum(int(m.sum()) for m in sel.values())
    in_dims = {k: mods[k.removesuffix(".weight")].weight.shape[0] for k in sel}
    assert n == sum(int(sel[k].sum()) * (in_dims[k] + 1) for k in sel)  # weights of the rows + biases
    assert rows > 0


def test_a_rule_given_the_wrong_unit_names_both() -> None:
    model, tok = tiny_model("llama", seed=0)
    s = score(model, tok, EXAMPLES, "wanda-rows", batch_size=2, use_cache=False)
    with pytest.raises(ExciseError, match=r"unit 'weight'.*got unit 'neuron'"):
        top(s, fraction=0.1, scope="row")
    heads = Selection({"x": torch.zeros(4, dtype=torch.bool)}, unit="head")
    with pytest.raises(
        ExciseError, match=r"selection of weights \(unit 'weight' or 'neuron'\), got unit 'head'"
    ):
        prune(model, heads)
    w = score(model, tok, None, "magnitude", use_cache=False)
    with pytest.raises(ExciseError, match="different unit kinds: weight vs neuron"):
        set_difference(w, Scores({k: w[k] for k in s}, unit="neuron"), p=0.1, q=0.1)


def test_ablate_restores_tied_aliases_exactly() -> None:
    model, _ = tiny_model("bloom", seed=0)
    params = dict(model.named_parameters(remove_duplicate=False))
    assert params["lm_head.weight"] is params["transformer.word_embeddings.weight"]
    before = params["lm_head.weight"].detach().clone()
    g = torch.Generator().manual_seed(0)
    a = torch.rand(before.shape, generator=g) < 0.3
    b = torch.rand(before.shape, generator=g) < 0.3
    sel = Selection({"transformer.word_embeddings.weight": a, "lm_head.weight": b})
    with ablate(model, sel) as n:
        assert n == int((a | b).sum())
        assert bool((params["lm_head.weight"].detach()[a | b] == 0).all())
    assert torch.equal(params["lm_head.weight"].detach(), before)


def test_scores_companions_round_trip(tmp_path: Path) -> None:
    basis = {"l.weight": torch.randn(4, 4, dtype=torch.float64)}
    s = Scores(
        {"l.weight": torch.rand(4)},
        unit="rank",
        companions={"basis": basis},
        companion_doc={"basis": "output-space eigenvectors per matrix, one column per rank"},
    )
    path = s.save(tmp_path / "r")
    back = Scores.load(path)
    assert back.unit == "rank" and torch.equal(back["l.weight"], s["l.weight"])
    assert torch.equal(back.companions["basis"]["l.weight"], basis["l.weight"])
    assert back.companion_doc == s.companion_doc
    assert list(back) == ["l.weight"]  # companions are not scores


def test_spd_causal_importance_is_a_method_whose_selection_ablates_subcomponents() -> None:
    from excise.spd import decompose

    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    spd = decompose(target, {"0": 6, "2": 5}, init="kaiming")
    x = torch.randn(32, 5)
    s = score(spd, None, x, "spd", use_cache=False)
    assert s.unit == "subcomponent" and s["0"].shape == (6,) and s["2"].shape == (5,)
    # independent: mean over inputs of the clipped lower-leaky gate value, by hand
    _, acts = spd.target_forward(x)
    ci = spd.causal_importances(acts)
    torch.testing.assert_close(s["0"], ci.lower["0"].clamp(0, 1).mean(0))
    sel = top(s, count=2, scope="matrix")
    with torch.no_grad(), ablate_subcomponents(spd, sel) as n:
        got = spd.target(x)
    assert n == 4
    with torch.no_grad():  # by hand: layer l = U diag(1 - sel) V + b
        h = x
        for name, act in (("0", torch.relu), ("2", lambda t: t)):
            comp = spd.component(name)
            m = (~sel[name]).float()
            h = act(((h @ comp.V.T) * m) @ comp.U.T + (comp.bias if comp.bias is not None else 0))
    torch.testing.assert_close(got, h)
    assert torch.equal(spd.target(x), target(x))  # restored


def test_a_name_with_a_dot_keeps_it(tmp_path: Path) -> None:
    s = Scores({"w": torch.rand(3)})
    path = s.save(tmp_path / "top0.01")
    assert path.name == "top0.01.safetensors" and (tmp_path / "top0.01.json").is_file()
    assert torch.equal(Scores.load(tmp_path / "top0.01")["w"], s["w"])
    assert Scores.load(path).unit == "weight"  # the tensor file's own path works too
