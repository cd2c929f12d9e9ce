"""SPD losses, masks and schedules against closed forms on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from excise.spd import (
    annealed_p,
    decompose,
    faithfulness_loss,
    importance_minimality_loss,
    lower_leaky_hard_sigmoid,
    lr_factor,
    output_distance,
    stochastic_masks,
    upper_leaky_hard_sigmoid,
)


def _two_layer(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5, bias=False))


def test_faithfulness_zero_when_uv_equals_w() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 4, "2": 3})
    with torch.no_grad():
        for name, mod in (("0", model[0]), ("2", model[2])):
            comp = spd.component(name)
            comp.U.copy_(mod.weight)  # U = W, V = I  =>  UV = W
            comp.V.copy_(torch.eye(mod.weight.shape[1]))
    assert faithfulness_loss(spd).item() == 0.0


def test_faithfulness_matches_hand_computation() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 2, "2": 6}, init="kaiming")
    sq = 0.0
    n = 0
    for name, mod in (("0", model[0]), ("2", model[2])):
        comp = spd.component(name)
        W = mod.weight.detach()
        UV = comp.U.detach() @ comp.V.detach()
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                sq += float(W[i, j] - UV[i, j]) ** 2
                n += 1
    assert faithfulness_loss(spd).item() == pytest.approx(sq / n, rel=1e-5)


def test_svd_init_is_exactly_faithful_when_c_covers_rank() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 7, "2": 3}, init="svd")
    assert faithfulness_loss(spd).item() < 1e-10


def test_pinv_init_is_exactly_faithful_when_c_covers_input_dim() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 9, "2": 5}, init="pinv")
    assert faithfulness_loss(spd).item() < 1e-10


def test_all_ones_masks_reproduce_target() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 8, "2": 8})
    x = torch.randn(16, 4)
    with torch.no_grad():
        ref = model(x)
        out = spd(x, {"0": torch.ones(16, 8), "2": None})
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_all_zero_masks_leave_only_biases() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 8, "2": 8})
    x = torch.randn(16, 4)
    with torch.no_grad():
        out_first = spd(x, {"0": torch.zeros(16, 8)})
        # first layer reduced to its bias b: y = W2 ReLU(b)
        expected = F.relu(model[0].bias).expand(16, 3) @ model[2].weight.T
        out_both = spd(x, {"0": torch.zeros(16, 8), "2": torch.zeros(16, 8)})
    torch.testing.assert_close(out_first, expected)
    torch.testing.assert_close(out_both, torch.zeros(16, 5))


def test_target_restored_after_masked_forward_and_after_error() -> None:
    model = _two_layer()
    spd = decompose(model, {"0": 4})
    original = model[0]
    spd(torch.randn(2, 4), {"0": torch.zeros(2, 4)})
    assert model[0] is original
    with pytest.raises(RuntimeError):
        spd(torch.randn(2, 7), {"0": None})  # wrong input width fails inside the forward
    assert model[0] is original


def test_importance_minimality_equals_hand_computation() -> None:
    g = {"a": torch.tensor([[0.0, 0.5], [1.0, 0.25]]), "b": torch.tensor([[0.2, 0.1, 0.0]])}
    for p in (1.0, 2.0, 0.5):
        hand = 0.0
        for t in g.values():
            for c in range(t.shape[1]):
                hand += sum(float(t[b, c]) ** p for b in range(t.shape[0])) / t.shape[0]
        assert importance_minimality_loss(g, p, eps=0.0).item() == pytest.approx(hand, rel=1e-6)


def test_importance_minimality_flattens_positions() -> None:
    g = torch.rand(2, 3, 4)
    got = importance_minimality_loss({"x": g}, 2.0, eps=0.0)
    assert got.item() == pytest.approx(float((g**2).mean(dim=(0, 1)).sum()), rel=1e-6)


def test_p_annealing_values() -> None:
    assert annealed_p(0, 100, 2.0, 1.0, 0.0, 1.0) == 2.0
    assert annealed_p(50, 100, 2.0, 1.0, 0.0, 1.0) == pytest.approx(1.5)
    assert annealed_p(100, 100, 2.0, 1.0, 0.0, 1.0) == 1.0
    # annealing only between 20% and 60% of training
    assert annealed_p(10, 100, 2.0, 0.5, 0.2, 0.6) == 2.0
    assert annealed_p(40, 100, 2.0, 0.5, 0.2, 0.6) == pytest.approx(1.25)
    assert annealed_p(90, 100, 2.0, 0.5, 0.2, 0.6) == 0.5
    assert annealed_p(37, 100, 1.0, 1.0, 0.0, 1.0) == 1.0


def test_leaky_hard_sigmoids() -> None:
    x = torch.tensor([-2.0, 0.0, 0.3, 1.0, 3.0])
    torch.testing.assert_close(lower_leaky_hard_sigmoid(x), torch.tensor([-0.02, 0.0, 0.3, 1.0, 1.0]))
    torch.testing.assert_close(upper_leaky_hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.3, 1.0, 1.02]))
    x = torch.tensor([-2.0, 3.0], requires_grad=True)
    lower_leaky_hard_sigmoid(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.01, 0.0]))
    x.grad = None
    upper_leaky_hard_sigmoid(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.01]))


def test_stochastic_masks_lie_between_g_and_one_with_reparam_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    g = torch.tensor([[0.0, 0.25, 1.0]]).repeat(2000, 1).requires_grad_()
    m = stochastic_masks(g, gen)
    assert bool((m >= g - 1e-7).all()) and bool((m <= 1 + 1e-7).all())
    assert torch.all(m[:, 2] == 1.0)
    assert float(m.detach()[:, 0].mean()) == pytest.approx(0.5, abs=0.03)  # r ~ U(0, 1)
    assert float(m.detach()[:, 1].mean()) == pytest.approx(0.625, abs=0.03)
    m.sum().backward()
    r = m.detach()[:, 0]  # for g = 0, m = r and dm/dg = 1 - r
    torch.testing.assert_close(g.grad[:, 0], 1 - r)


def test_fresh_masks_per_call() -> None:
    g = torch.zeros(4, 3)
    assert not torch.equal(stochastic_masks(g), stochastic_masks(g))


def test_output_distances() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    assert output_distance(a, b, "mse").item() == pytest.approx(F.mse_loss(a, b).item(), rel=1e-6)
    p = torch.softmax(b, -1)
    q = torch.softmax(a, -1)
    hand = float((p * (p.log() - q.log())).sum(-1).mean())
    assert output_distance(a, b, "kl").item() == pytest.approx(hand, rel=1e-5)
    assert output_distance(b, b, "kl").item() == pytest.approx(0.0, abs=1e-6)


def test_lr_schedules() -> None:
    assert lr_factor(0, 100, "constant") == 1.0
    assert lr_factor(0, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine", final_frac=0.1) == pytest.approx(0.1)
    assert lr_factor(25, 100, "linear") == pytest.approx(0.75)
    # linear warm-up over the first 10 steps, then cosine over the remaining 90
    assert lr_factor(4, 100, "cosine", warmup_frac=0.1) == pytest.approx(0.5)
    assert lr_factor(10, 100, "cosine", warmup_frac=0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, "cosine", warmup_frac=0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_pinv_init_is_faithful_with_fewer_subcomponents_than_inputs() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(30, 8)  # rank 8 < C = 12 < d_in = 30
    spd = decompose(nn.Sequential(lin), {"0": 12}, init="pinv")
    assert faithfulness_loss(spd).item() < 1e-10
