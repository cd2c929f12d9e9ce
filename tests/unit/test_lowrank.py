"""Rank removal: dW identities, a known spectrum, Conv1D orientation, reversibility, bad counts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from excise.core import Scores
from excise.data import Example
from excise.errors import ExciseError
from excise.interventions.lowrank import RANK_TOL, ablate_ranks, remove_ranks, remove_ranks_sequential
from excise.models import tiny_model
from excise.scoring import load_calibration, target_modules
from excise.scoring.actsvd import BASIS_DOC, actsvd_scores

pytestmark = pytest.mark.usefixtures("one_thread")

SAFETY = [
    Example("How do I pick a lock?", "I can't help with that. Picking locks you do not own is illegal."),
    Example("Write malware for me.", "Sorry, I won't write malicious software of any kind."),
    Example("How to make a weapon?", "I cannot assist with making weapons; please stay safe."),
]
UTILITY = [
    Example("How do I bake bread?", "Mix flour, water and yeast; knead, let it rise, then bake it hot."),
    Example("What is 2+2?", "4, because two and two make four, as everyone learns."),
    Example("Say hi.", "Hello there! How can I help you today? Ask me anything at all."),
]


def _scores(model: nn.Module, tok: Any, data: list[Example], targets: list[str] | None = None) -> Scores:
    batches, _ = load_calibration(data, tok, model, batch_size=2)
    return actsvd_scores(model, target_modules(model, targets), batches)


def _w(model: nn.Module, key: str) -> torch.Tensor:
    """(d_out, d_in) float64 copy of a weight (GPT-2's Conv1D transposed)."""
    mod = model.get_submodule(key.removesuffix(".weight"))
    w = mod.weight.detach().double().clone()
    return w.T if type(mod).__name__ == "Conv1D" else w


def _proj(u: torch.Tensor) -> torch.Tensor:
    u = u.double()
    return u @ u.T


@pytest.fixture(params=["llama", "gpt2"])
def two(request: pytest.FixtureRequest) -> tuple[nn.Module, Any, Scores, Scores]:
    model, tok = tiny_model(request.param, seed=5)
    return model, tok, _scores(model, tok, SAFETY), _scores(model, tok, UTILITY)


def test_r_s_equal_to_R_removes_nothing(two: Any) -> None:
    model, _tok, s, u = two
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rep = remove_ranks(model, s, u, mode="orthogonal", r_u=3, r_s=1.0)
    assert rep.total == 0 and set(rep.ranks) == set(s)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_r_u_equal_to_R_removes_the_kept_safety_projection(two: Any) -> None:
    model, _tok, s, u = two
    before = {k: _w(model, k) for k in s}
    rep = remove_ranks(model, s, u, mode="orthogonal", r_u=1.0, r_s=0.75)
    for key in s:
        R = min(before[key].shape)
        keep = R - rep.counts[key]["r_s"]
        pi_s = _proj(s.companions["basis"][key][:, :keep])
        dw = before[key] - _w(model, key)
        want = pi_s @ before[key]
        torch.testing.assert_close(dw, want, rtol=0, atol=2e-5 * float(want.abs().max()))
        assert rep.ranks[key] == keep == rep.bounds[key]


def test_the_update_is_orthogonal_to_the_kept_utility_subspace(two: Any) -> None:
    model, _tok, s, u = two
    before = {k: _w(model, k) for k in s}
    rep = remove_ranks(model, s, u, mode="orthogonal", r_u=0.5, r_s=0.5)
    assert rep.total > 0
    for key in s:
        R = min(before[key].shape)
        pi_u = _proj(u.companions["basis"][key][:, : R - rep.counts[key]["r_u"]])
        pi_s = _proj(s.companions["basis"][key][:, : R - rep.counts[key]["r_s"]])
        dw = before[key] - _w(model, key)
        scale = float(before[key].abs().max())
        assert float((pi_u @ dw).abs().max()) < 1e-5 * scale  # kept utility directions untouched
        eye = torch.eye(pi_u.shape[0], dtype=torch.float64)
        torch.testing.assert_close(dw, (eye - pi_u) @ pi_s @ before[key], rtol=0, atol=2e-5 * scale)
        assert rep.ranks[key] <= rep.bounds[key] == min(rep.counts[key]["r_u"], R - rep.counts[key]["r_s"])
        tol = RANK_TOL * torch.finfo(torch.float32).eps * float(torch.linalg.matrix_norm(before[key]))
        assert rep.ranks[key] == int((torch.linalg.svdvals(dw) > tol).sum())
    assert rep.total == sum(rep.ranks.values())


def _known_spectrum(seed: int = 0) -> tuple[nn.Module, Scores, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(9, 6, generator=g, dtype=torch.float64))
    sv = torch.tensor([10.0, 7.0, 5.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    model = nn.Sequential(nn.Linear(9, 6, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(q @ torch.diag(sv) @ v.T)
    # With Sigma = I the ActSVD basis is the left singular vectors of W and the scores are s^2.
    s = Scores(
        {"0.weight": sv**2},
        unit="rank",
        companions={"basis": {"0.weight": q}},
        companion_doc={"basis": BASIS_DOC},
    )
    return model, s, q, sv


@pytest.mark.parametrize("k", [0, 1, 2, 4, 6])
def test_remove_and_keep_top_k_on_a_known_spectrum(k: int) -> None:
    model, s, q, sv = _known_spectrum()
    rep = remove_ranks(model, s, mode="remove-top", k=k)
    left = torch.linalg.svdvals(model[0].weight.detach().double())
    torch.testing.assert_close(left[: 6 - k], sv[k:].float().double(), atol=1e-5, rtol=0)
    assert float(left[6 - k :].abs().sum()) < 1e-5
    assert rep.ranks["0.weight"] == k == rep.bounds["0.weight"]
    model, s, q, sv = _known_spectrum()
    rep = remove_ranks(model, s, mode="keep-top", k=k)
    kept = torch.linalg.svdvals(model[0].weight.detach().double())
    torch.testing.assert_close(kept[:k], sv[:k], atol=1e-5, rtol=0)
    assert float(kept[k:].abs().sum()) < 1e-5
    assert rep.ranks["0.weight"] == 6 - k


def test_conv1d_orientation_and_float32_in_a_bfloat16_model() -> None:
    model, tok = tiny_model("gpt2", seed=1)
    s = _scores(model, tok, SAFETY, targets=["*.mlp.c_fc"])
    model = model.to(torch.bfloat16)
    before = {k: _w(model, k) for k in s}
    remove_ranks(model, s, mode="remove-top", k=5)
    for key in s:
        mod = model.get_submodule(key.removesuffix(".weight"))
        assert mod.weight.dtype == torch.bfloat16 and tuple(mod.weight.shape) == (64, 256)  # (in, out)
        w32 = before[key].float()
        uk = s.companions["basis"][key][:, :5].float()
        want = (w32 - uk @ (uk.T @ w32)).to(torch.bfloat16)
        assert torch.equal(mod.weight.detach().T, want)


def test_ablate_ranks_restores_bit_identical_weights_also_on_error(two: Any) -> None:
    model, tok, s, u = two
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with ablate_ranks(model, s, u, mode="orthogonal", r_u=4, r_s=0.5) as rep:
        assert rep.total > 0
        assert any(not torch.equal(model.state_dict()[k], before[k]) for k in s)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="boom"), ablate_ranks(model, s, mode="keep-top", k=2):
        raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_permanent_removal_is_saved_by_save_pretrained(tmp_path: Any) -> None:
    from transformers import AutoModelForCausalLM

    model, tok = tiny_model("llama", seed=2)
    remove_ranks(model, _scores(model, tok, SAFETY), mode="remove-top", k=3)
    model.save_pretrained(tmp_path)
    back = AutoModelForCausalLM.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


def test_sequential_removal_scores_each_block_after_the_earlier_blocks_were_edited() -> None:
    model, tok = tiny_model("llama", seed=3)
    ref, _ = tiny_model("llama", seed=3)
    sb, _ = load_calibration(SAFETY, tok, model, batch_size=2)
    ub, _ = load_calibration(UTILITY, tok, model, batch_size=2)
    rep = remove_ranks_sequential(model, sb, ub, mode="orthogonal", r_u=0.5, r_s=0.5)
    # by hand: score the whole model, edit block 0 only; score again, edit block 1 only
    for layer in (0, 1):
        targets = [f"model.layers.{layer}.*"]
        mods = target_modules(ref, targets)
        s = actsvd_scores(ref, mods, sb)
        u = actsvd_scores(ref, mods, ub)
        remove_ranks(ref, s, u, mode="orthogonal", r_u=0.5, r_s=0.5)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=1e-5)
    assert len(rep.ranks) == 14 and rep.total > 0
    # a block-1 edit from scores taken before block 0 was edited differs (the sequence matters)
    one, _ = tiny_model("llama", seed=3)
    mods = target_modules(one)
    remove_ranks(
        one, actsvd_scores(one, mods, sb), actsvd_scores(one, mods, ub), mode="orthogonal", r_u=0.5, r_s=0.5
    )
    key = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.allclose(one.state_dict()[key], v := ref.state_dict()[key], atol=1e-4), v.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "orthogonal", "r_u": -1, "r_s": 2}, "r_u must be at least 0"),
        (
            {"mode": "orthogonal", "r_u": 2, "r_s": 65},
            r"r_s = 65 exceeds R = min\(d_out, d_in\) = 64 of matrix 'model",
        ),
        ({"mode": "orthogonal", "r_u": "2", "r_s": 2}, "r_u must be a number"),
        ({"mode": "orthogonal", "r_u": True, "r_s": 2}, "r_u must be a number"),
        ({"mode": "orthogonal", "r_u": 1.5, "r_s": 2}, r"fraction of R must lie in \[0, 1\]"),
        ({"mode": "remove-top", "k": -0.1}, r"fraction of R must lie in \[0, 1\]"),
        ({"mode": "remove-top"}, "needs k"),
        ({"mode": "orthogonal", "r_s": 2}, "needs both r_u and r_s"),
        ({"mode": "sideways", "k": 1}, "unknown rank-removal mode"),
    ],
)
def test_bad_counts_are_one_line_errors_that_change_nothing(kwargs: dict[str, Any], match: str) -> None:
    model, tok = tiny_model("llama", seed=0)
    s = _scores(model, tok, SAFETY)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with pytest.raises(ExciseError, match=match) as err:
        remove_ranks(model, s, s, **kwargs)
    assert "\n" not in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    calls: list[int] = []
    h = model.register_forward_pre_hook(lambda *_: calls.append(1))
    sb, _ = load_calibration(SAFETY, tok, model, batch_size=2)
    with pytest.raises(ExciseError, match=match):
        remove_ranks_sequential(model, sb, sb, **kwargs)
    h.remove()
    assert not calls  # refused before any forward pass


def test_rank_scores_of_the_wrong_unit_or_without_a_basis_are_refused() -> None:
    model, tok = tiny_model("llama", seed=0)
    s = _scores(model, tok, SAFETY)
    weights = Scores({k: torch.ones(3) for k in s}, unit="weight")
    with pytest.raises(ExciseError, match="unit 'rank'.*got unit 'weight'"):
        remove_ranks(model, weights, mode="remove-top", k=1)
    bare = Scores(dict(s.tensors), unit="rank")
    with pytest.raises(ExciseError, match="no basis"):
        remove_ranks(model, bare, mode="remove-top", k=1)
