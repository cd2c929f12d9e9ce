"""Recovery metrics against hand-built decompositions with known answers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from excise.spd import alive_counts, decompose, identity_ci_errors, mmcs_ml2r
from excise.spd.metrics import (
    dense_ci_errors,
    match_columns,
    mechanism_mmcs,
    neuron_contributions,
    reconstruction,
)


def _tms_w() -> torch.Tensor:
    angles = torch.arange(5) * 2 * torch.pi / 5
    return torch.stack([torch.cos(angles), torch.sin(angles)]) * 1.1  # (2, 5) pentagon


def test_mmcs_ml2r_perfect_decomposition() -> None:
    W = _tms_w()
    U = torch.cat([W, torch.zeros(2, 3)], dim=1)  # 5 true mechanisms + 3 dead subcomponents
    V = torch.cat([torch.eye(5), torch.zeros(3, 5)])
    m = mmcs_ml2r(W, U, V)
    assert m["mmcs"] == pytest.approx(1.0, abs=1e-6)
    assert m["ml2r"] == pytest.approx(1.0, abs=1e-6)
    assert m["best_subcomponent"] == [0, 1, 2, 3, 4]
    assert mechanism_mmcs(W, U, V) == pytest.approx(1.0, abs=1e-6)


def test_ml2r_reports_shrinkage_and_split_features() -> None:
    W = _tms_w()
    m = mmcs_ml2r(W, 0.8 * W, torch.eye(5))
    assert m["mmcs"] == pytest.approx(1.0, abs=1e-6)
    assert m["ml2r"] == pytest.approx(0.8, abs=1e-6)
    # every feature split evenly over two identical subcomponents: direction right, half the norm
    U = torch.cat([0.5 * W, 0.5 * W], dim=1)
    V = torch.cat([torch.eye(5), torch.eye(5)])
    assert mmcs_ml2r(W, U, V)["ml2r"] == pytest.approx(0.5, abs=1e-6)


def test_mmcs_of_a_dense_subcomponent_is_lower() -> None:
    W = _tms_w()
    # one subcomponent spanning all columns (not a per-feature mechanism): per-column cosines can be
    # perfect while the strict whole-matrix cosine is not
    U = W[:, :1].clone()
    V = torch.ones(1, 5)
    assert mechanism_mmcs(W, U, V) < 0.6


def test_column_cosine_by_hand() -> None:
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    U = torch.tensor([[1.0], [1.0]])
    V = torch.tensor([[1.0, -1.0]])
    m = mmcs_ml2r(W, U, V)
    # column 0: U*1 = (1, 1) vs (1, 0): cos = 1/sqrt(2); column 1: U*(-1) = (-1,-1) vs (0, 2): -1/sqrt(2)
    assert m["mmcs"] == pytest.approx(0.0, abs=1e-6)
    assert m["min_cos"] == pytest.approx(-(2**-0.5), abs=1e-6)


def test_hungarian_matching_and_identity_errors() -> None:
    perm = [3, 0, 4, 1, 2]
    ci = torch.zeros(5, 8)
    for f, c in enumerate(perm):
        ci[f, c] = 0.9
    assert match_columns(ci)[:5] == perm
    assert identity_ci_errors(ci)["errors"] == 0
    ci[2, 6] = 0.7  # an extra active subcomponent for feature 2
    ci[4, perm[4]] = 0.2  # feature 4 no longer activates its own subcomponent
    assert identity_ci_errors(ci)["errors"] == 2


def test_dense_errors() -> None:
    ci = torch.zeros(4, 6)
    ci[:, [1, 4]] = 1.0
    assert dense_ci_errors(ci, 2)["errors"] == 0
    assert dense_ci_errors(ci, 3)["errors"] == 4  # a third column expected on for all 4 inputs
    ci[0, 5] = 0.8
    assert dense_ci_errors(ci, 2)["errors"] == 1


def test_alive_counts() -> None:
    g = {"a": torch.tensor([[0.0, 0.05, 0.5], [0.2, 0.0, 0.0]]), "b": torch.zeros(3, 4)}
    assert alive_counts(g, 0.1) == {"a": 2, "b": 0}


def test_neuron_contributions_by_loop() -> None:
    torch.manual_seed(0)
    F_, D, N = 4, 6, 3
    W_E, W_in, W_out = torch.randn(F_, D), torch.randn(N, D), torch.randn(D, N)
    got = neuron_contributions(W_E, W_in, W_out)
    for i in range(F_):
        for n in range(N):
            read = sum(W_E[i, d] * W_out[d, n] for d in range(D))
            write = sum(W_in[n, d] * W_E[i, d] for d in range(D))
            assert float(got[i, n]) == pytest.approx(float(read * write), rel=1e-4, abs=1e-5)


def test_reconstruction_unmasked_is_exact_and_zero_mask_matches_bias_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    spd = decompose(model, {"0": 6, "2": 6})
    x = torch.randn(50, 3)
    r = reconstruction(spd, x, "mse")
    assert r["unmasked"] == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        bias_only = model[2].bias.expand(50, 2)  # all layers ablated: only the last bias remains
        assert r["zero_masked"] == pytest.approx(float(((bias_only - model(x)) ** 2).mean()), rel=1e-5)


def test_negligible_aligned_leftover_does_not_hijack_ml2r() -> None:
    W = _tms_w()
    # the true mechanisms plus, for feature 0, a leftover of norm 1e-4 pointing exactly the same way
    U = torch.cat([W, 1e-4 * W[:, :1]], dim=1)
    V = torch.cat([torch.eye(5), torch.eye(5)[:1]])
    with torch.no_grad():
        U[:, 0] *= 1 + 1e-6  # the real one is a hair off in norm; both cosines are 1 to float precision
    m = mmcs_ml2r(W, U, V)
    assert m["ml2r"] == pytest.approx(1.0, abs=1e-4)
    assert m["mmcs"] == pytest.approx(1.0, abs=1e-6)
    # a feature represented only by a tiny subcomponent still shows up as shrinkage
    m2 = mmcs_ml2r(
        W, torch.cat([W[:, 1:], 1e-3 * W[:, :1]], dim=1), torch.cat([torch.eye(5)[1:], torch.eye(5)[:1]])
    )
    assert m2["ml2r"] == pytest.approx(0.8 + 0.2 * 1e-3, abs=1e-5)


def test_pattern_errors_with_a_banded_expectation() -> None:
    # expected: input j needs mechanisms j-1, j, j+1 (cyclic), as for Wᵀ of a pentagon TMS
    E = torch.zeros(5, 5)
    for j in range(5):
        for d in (-1, 0, 1):
            E[j, (j + d) % 5] = 1
    perm = [4, 2, 0, 3, 1]
    ci = torch.zeros(5, 9)
    for m, c in enumerate(perm):
        ci[:, c] = E[:, m] * 0.95
    from excise.spd.metrics import pattern_ci_errors

    r = pattern_ci_errors(ci, E)
    assert r["errors"] == 0 and r["order"][:5] == perm
    assert (
        identity_ci_errors(ci)["errors"] == 10
    )  # against the identity every band entry off the diagonal counts
    ci[0, 7] = 0.9  # an extra subcomponent
    assert pattern_ci_errors(ci, E)["errors"] == 1
