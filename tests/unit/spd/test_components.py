"""Decomposition wrapper, gates and gradient flow, checked against naive computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from excise.errors import ExciseError
from excise.spd import LossConfig, decompose, spd_losses
from excise.spd.gates import ScalarMLPGates, SharedMLPGates, VectorMLPGates


def test_scalar_gates_match_a_loop_of_small_mlps() -> None:
    torch.manual_seed(0)
    C, H = 5, 7
    gates = ScalarMLPGates(C, H)
    with torch.no_grad():
        gates.b_in.normal_()
        gates.b_out.normal_()
    h = torch.randn(11, C)
    got = gates(h)
    for c in range(C):
        fc1 = nn.Linear(1, H)
        fc2 = nn.Linear(H, 1)
        with torch.no_grad():
            fc1.weight.copy_(gates.w_in[c].unsqueeze(1))
            fc1.bias.copy_(gates.b_in[c])
            fc2.weight.copy_(gates.w_out[c].unsqueeze(0))
            fc2.bias.copy_(gates.b_out[c : c + 1])
        want = fc2(F.gelu(fc1(h[:, c : c + 1]))).squeeze(1)
        torch.testing.assert_close(got[:, c], want, atol=1e-5, rtol=1e-5)


def test_vector_gates_match_a_loop() -> None:
    torch.manual_seed(1)
    C, H, D = 4, 3, 6
    gates = VectorMLPGates(C, H, D)
    a = torch.randn(9, D)
    got = gates(torch.zeros(9, C), a)
    for c in range(C):
        hidden = F.gelu(a @ gates.w_in[:, c, :] + gates.b_in[c])
        torch.testing.assert_close(got[:, c], hidden @ gates.w_out[c] + gates.b_out[c], atol=1e-5, rtol=1e-5)


def test_shared_gates_shape() -> None:
    gates = SharedMLPGates(C=4, hidden=8, d_in=6)
    assert gates(torch.zeros(3, 4), torch.randn(3, 6)).shape == (3, 4)


def test_masked_linear_equals_sum_of_masked_rank_one_pieces() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    model = nn.Sequential(lin)
    spd = decompose(model, {"0": 6}, init="kaiming")
    comp = spd.component("0")
    x = torch.randn(5, 4)
    m = torch.rand(5, 6)
    out = spd(x, {"0": m})
    for b in range(5):
        W_b = sum(m[b, c] * torch.outer(comp.U[:, c], comp.V[c]) for c in range(6))
        torch.testing.assert_close(out[b], W_b @ x[b] + lin.bias, atol=1e-5, rtol=1e-5)


def test_embedding_decomposition() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    spd = decompose(model, {"0": 12, "1": 3})
    tokens = torch.randint(0, 10, (3, 5))
    with torch.no_grad():
        torch.testing.assert_close(spd(tokens, {"0": None, "1": None}), model(tokens), atol=1e-5, rtol=1e-5)
        comp = spd.component("0")
        one_hot = F.one_hot(tokens, 10).float()
        torch.testing.assert_close(comp.inner(tokens), one_hot @ comp.V.T)
        mask = torch.rand(3, 5, 12)
        want = ((one_hot @ comp.V.T) * mask) @ comp.U.T
        torch.testing.assert_close(spd(tokens, {"0": mask}), model[1](want), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("gate", ["mlp", "vector_mlp", "shared_mlp"])
def test_gradients_flow_into_u_v_and_gates(gate: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 4))
    spd = decompose(model, {"0": 5, "2": 5}, gate_type=gate, init="kaiming")
    with torch.no_grad():
        for name in ("0", "2"):  # open the gates a little so every loss term has a gradient
            for p in spd.gate(name).parameters():
                p.add_(0.1)
    x = torch.rand(32, 4)
    terms = spd_losses(spd, x, LossConfig(importance_minimality=1e-2), p=1.0)
    terms["total"].backward()
    for name, p in spd.named_parameters():
        if name.startswith("target."):
            assert p.grad is None
            continue
        assert p.grad is not None, name
        assert float(p.grad.abs().sum()) > 0, name


def test_target_is_not_trained_or_edited() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spd = decompose(model, {"0": 2})
    assert all(not p.requires_grad for p in model.parameters())
    assert isinstance(model[0], nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(spd.decomposition_state_dict()) == {
        "components.0.U",
        "components.0.V",
        "gates.0.w_in",
        "gates.0.b_in",
        "gates.0.w_out",
        "gates.0.b_out",
    }


def test_patterns_with_wildcards_and_own_c() -> None:
    model = nn.ModuleDict(
        {"a": nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), "b": nn.Linear(2, 3)}
    )
    spd = decompose(model, {"a.*": 4, "b": 7})
    assert spd.C == {"a.0": 4, "a.2": 4, "b": 7}  # the ReLU matched by a.* is skipped


@pytest.mark.parametrize(
    ("modules", "words"),
    [
        ({"nope": 3}, ["nope", "matches no module"]),
        ({"0": 0}, ["C for pattern '0'", ">= 1"]),
        ({"1": 2}, ["ReLU", "nn.Linear"]),
        ([("0", 2), ("0", 3)], ["listed twice"]),
        ({"0": 2, "*": 3}, ["matched by both"]),
        ({}, ["at least one"]),
    ],
)
def test_bad_module_specs_raise_clear_errors(modules, words) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(ExciseError) as info:
        decompose(model, modules)
    for w in words:
        assert w in str(info.value)


def test_unknown_gate_and_init() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ExciseError, match="unknown gate type"):
        decompose(model, {"0": 2}, gate_type="transformer")
    with pytest.raises(ExciseError, match="unknown init"):
        decompose(model, {"0": 2}, init="zeros")


def test_fused_passes_equal_separate_passes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    spd = decompose(model, {"0": 6, "2": 4, "4": 3}, init="kaiming")  # UV != W: original rows matter
    x = torch.randn(7, 4)
    sets = [
        {"0": torch.rand(7, 6), "2": torch.rand(7, 4), "4": None},
        {"0": torch.rand(7, 6)},
        {"2": torch.rand(7, 4)},
        {"4": torch.rand(7, 3)},
        {},
    ]
    fused = spd.forward_passes(x, sets)
    for out, masks in zip(fused, sets, strict=True):
        torch.testing.assert_close(out, spd(x, masks), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fused[-1], model(x))


def test_fused_losses_equal_unfused() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 4))
    spd = decompose(model, {"0": 5, "2": 5}, init="kaiming")
    x = torch.rand(16, 4)
    cfg = LossConfig(n_mask_samples=2)
    a = spd_losses(spd, x, cfg, 1.0, torch.Generator().manual_seed(3), fuse=True)
    b = spd_losses(spd, x, cfg, 1.0, torch.Generator().manual_seed(3), fuse=False)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
