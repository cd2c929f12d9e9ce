"""The delta component: the residual W − UV added to masked layers with a per-input random scale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from excise.spd import LossConfig, decompose, spd_losses
from excise.spd.losses import delta_masks


def _naive_layer(comp, a: torch.Tensor, mask: torch.Tensor, dmask: torch.Tensor) -> torch.Tensor:
    """Row by row: Σ_c m_c U_c (V_c · a) + m_Δ (W − Σ_c U_c V_cᵀ) a + b."""
    rows = []
    for i in range(a.shape[0]):
        y = torch.zeros(comp.d_out)
        residual = comp.W.clone()
        for c in range(comp.C):
            piece = torch.outer(comp.U[:, c], comp.V[c])
            y = y + mask[i, c] * (piece @ a[i])
            residual = residual - piece
        y = y + dmask[i] * (residual @ a[i])
        rows.append(y + comp.bias)
    return torch.stack(rows)


def test_delta_masked_forward_matches_a_naive_loop() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    spd = decompose(model, {"0": 3, "2": 3}, init="kaiming")  # U V far from W: the residual matters
    x = torch.randn(7, 6)
    masks = {"0": torch.rand(7, 3), "2": torch.rand(7, 3)}
    deltas = {"0": torch.rand(7), "2": torch.rand(7)}
    with torch.no_grad():
        got = spd(x, masks, None, deltas)
        h = torch.relu(_naive_layer(spd.component("0"), x, masks["0"], deltas["0"]))
        want = _naive_layer(spd.component("2"), h, masks["2"], deltas["2"])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_all_ones_masks_with_full_delta_give_the_target_exactly() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    spd = decompose(model, {"0": 2, "2": 2}, init="kaiming")  # rank 2 < 4: U V alone cannot equal W
    x = torch.randn(9, 6)
    ones = {"0": torch.ones(9, 2), "2": torch.ones(9, 2)}
    full = {"0": torch.ones(9), "2": torch.ones(9)}
    with torch.no_grad():
        torch.testing.assert_close(spd(x, ones, None, full), model(x), atol=1e-5, rtol=1e-5)
        assert (spd(x, ones) - model(x)).abs().max() > 1e-2  # without the residual it differs


def test_embedding_delta_restores_the_embedding() -> None:
    torch.manual_seed(2)
    emb = nn.Embedding(11, 4)
    model = nn.Sequential(emb)
    spd = decompose(model, {"0": 3}, init="kaiming")
    tok = torch.randint(0, 11, (5, 6))
    with torch.no_grad():
        got = spd(tok, {"0": torch.ones(5, 6, 3)}, None, {"0": torch.ones(5, 6)})
        torch.testing.assert_close(got, emb(tok), atol=1e-6, rtol=1e-6)
        half = spd(tok, {"0": torch.zeros(5, 6, 3)}, None, {"0": torch.full((5, 6), 0.5)})
        V, U = spd.component("0").V, spd.component("0").U
        want = 0.5 * (emb.weight - (U @ V).T)[tok]
        torch.testing.assert_close(half, want, atol=1e-6, rtol=1e-6)


def test_fused_passes_with_delta_equal_separate_passes() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5))
    spd = decompose(model, {"0": 6, "2": 4}, init="kaiming")
    x = torch.randn(7, 4)
    sets = [{"0": torch.rand(7, 6), "2": torch.rand(7, 4)}, {"0": torch.rand(7, 6)}, {"2": torch.rand(7, 4)}]
    dsets = [{"0": torch.rand(7), "2": torch.rand(7)}, {"0": torch.rand(7)}, {"2": torch.rand(7)}]
    with torch.no_grad():
        fused = spd.forward_passes(x, sets, None, dsets)
        for out, m, d in zip(fused, sets, dsets, strict=True):
            torch.testing.assert_close(out, spd(x, m, None, d), atol=1e-6, rtol=1e-6)


def test_delta_masks_are_uniform_per_input_and_fresh() -> None:
    g = {"a": torch.zeros(4000, 3, 5)}
    gen = torch.Generator().manual_seed(0)
    d1 = delta_masks({"a": None}, g, gen)["a"]
    d2 = delta_masks({"a": None}, g, gen)["a"]
    assert d1.shape == (4000, 3)
    assert float(d1.min()) >= 0.0 and float(d1.max()) < 1.0
    assert abs(float(d1.mean()) - 0.5) < 0.02 and abs(float(d1.var()) - 1 / 12) < 0.005
    assert not torch.equal(d1, d2)


def test_delta_losses_fused_equal_unfused_and_reach_u_and_v() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 4))
    spd = decompose(model, {"0": 5, "2": 5}, init="kaiming")
    x = torch.rand(16, 4)
    cfg = LossConfig(delta_component=True, faithfulness=0.0, n_mask_samples=2)
    a = spd_losses(spd, x, cfg, 1.0, torch.Generator().manual_seed(3), fuse=True)
    b = spd_losses(spd, x, cfg, 1.0, torch.Generator().manual_seed(3), fuse=False)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    assert "faithfulness" not in a
    a["total"].backward()
    for name in ("0", "2"):
        comp = spd.component(name)
        assert comp.U.grad is not None and float(comp.U.grad.abs().sum()) > 0
        assert comp.V.grad is not None and float(comp.V.grad.abs().sum()) > 0


def test_reconstruction_reports_the_delta_objective() -> None:
    from excise.spd.metrics import reconstruction

    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    spd = decompose(model, {"0": 2, "2": 2}, init="kaiming")
    x = torch.randn(40, 3)
    r = reconstruction(spd, x, "mse", torch.Generator().manual_seed(9), delta=True)
    assert "stochastic_masked_delta" not in reconstruction(spd, x, "mse", torch.Generator().manual_seed(9))
    # redo by hand with the same random stream: stochastic masks per layer first, then one r per input
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        target, acts = spd.target_forward(x)
        ci = spd.causal_importances(acts)
        m = {
            n: ci.lower[n] + (1 - ci.lower[n]) * torch.rand(ci.lower[n].shape, generator=gen)
            for n in ("0", "2")
        }
        d = {n: torch.rand(40, generator=gen) for n in ("0", "2")}
        h = torch.relu(_naive_layer(spd.component("0"), x, m["0"], d["0"]))
        want = float(((_naive_layer(spd.component("2"), h, m["2"], d["2"]) - target) ** 2).mean())
    assert r["stochastic_masked_delta"] == pytest.approx(want, rel=1e-5)
