"""ActSVD: the streamed Gram + eigh basis against an SVD of W X^T from stored float64 activations."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from excise.core import Scores
from excise.data import Batch, Example, make_batches
from excise.errors import ExciseError
from excise.models import tiny_model
from excise.scoring import load_calibration, score, target_modules
from excise.scoring.actsvd import actsvd_scores, input_groups, out_in_weight, stream_grams

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = ["llama", "gpt2", "opt", "bloom", "gpt_neox"]
EXAMPLES = [
    Example("How do I bake bread?", "Mix flour, water and yeast; knead, let it rise, then bake it hot."),
    Example("What is 2+2?", "4, because two and two make four."),
    Example("Name a colour, please, and say why you like it.", "Blue, because of the sea and the sky."),
    Example("Say hi.", "Hello there! How can I help you today? Ask me anything."),
    Example("", "plain text sample scored on every token of it, start to end", chat=False),
]


def stored_inputs(model: torch.nn.Module, tok: Any, modules: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """Every module's float64 inputs at the response tokens, one unpadded sample at a time."""
    store: dict[str, list[torch.Tensor]] = {n: [] for n in modules}
    state: dict[str, torch.Tensor] = {}

    def make(name: str) -> Any:
        def pre(_m: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            store[name].append(x[state["pos"]].double())

        return pre

    handles = [m.register_forward_pre_hook(make(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            for ex in EXAMPLES:
                (b,) = make_batches(tok, [ex], batch_size=1)
                assert bool(b.attention_mask.all())
                state["pos"] = (b.labels != -100).reshape(-1)
                model(input_ids=b.input_ids, attention_mask=b.attention_mask)
    finally:
        for h in handles:
            h.remove()
    return {n: torch.cat(v) for n, v in store.items()}


def sin_largest_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """sin of the largest principal angle between the column spans of orthonormal a and b."""
    a, b = a.double(), b.double()
    return float(torch.linalg.matrix_norm(b - a @ (a.T @ b), ord=2))


def _batches(model: torch.nn.Module, tok: Any, batch_size: int = 3) -> list[Batch]:
    batches, _ = load_calibration(EXAMPLES, tok, model, batch_size=batch_size)
    assert any(bool((b.attention_mask == 0).any()) for b in batches)  # padding is exercised
    return batches


@pytest.mark.parametrize("family", FAMILIES)
def test_basis_is_the_svd_of_w_xt_from_stored_activations(family: str) -> None:
    model, tok = tiny_model(family, seed=1)
    mods = target_modules(model)
    s = actsvd_scores(model, mods, _batches(model, tok))
    xs = stored_inputs(model, tok, mods)
    checked = 0
    for name, mod in mods.items():
        key = f"{name}.weight"
        w = out_in_weight(mod).double()
        u, sv, _ = torch.linalg.svd(w @ xs[name].T, full_matrices=False)
        r = min(w.shape)
        assert s[key].shape == (r,) and s.companions["basis"][key].shape == (w.shape[0], r)
        lam = sv[:r] ** 2
        torch.testing.assert_close(s[key].double(), lam, rtol=1e-4, atol=1e-6 * float(lam[0]))
        basis = s.companions["basis"][key]
        ortho = basis.double().T @ basis.double()
        torch.testing.assert_close(ortho, torch.eye(r, dtype=torch.float64), atol=1e-5, rtol=0)
        nxt = torch.cat([lam[1:], lam.new_zeros(1)])
        for k in sorted({1, 2, r // 4, r // 2, r}):
            if float(lam[k - 1] - nxt[k - 1]) > 1e-3 * float(lam[0]):  # a well-defined top-k subspace
                assert sin_largest_angle(basis[:, :k], u[:, :k]) < 1e-4, (key, k)
                checked += 1
    assert checked >= 2 * len(mods)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_grams_are_unchanged_by_padding(family: str) -> None:
    model, tok = tiny_model(family, seed=2)
    mods = target_modules(model)
    singles, _ = load_calibration(EXAMPLES, tok, model, batch_size=1)
    assert not any(bool((b.attention_mask == 0).any()) for b in singles)
    padded = _batches(model, tok, batch_size=5)
    extra = []  # and the same batch with 7 more padding columns
    for b in padded:
        B = len(b)
        extra.append(
            Batch(
                torch.cat([b.input_ids, torch.full((B, 7), tok.pad_token_id)], 1),
                torch.cat([b.attention_mask, torch.zeros(B, 7, dtype=b.attention_mask.dtype)], 1),
                torch.cat([b.labels, torch.full((B, 7), -100)], 1),
            )
        )
    g1, n1 = stream_grams(model, mods, singles)
    g2, n2 = stream_grams(model, mods, padded)
    g3, n3 = stream_grams(model, mods, extra)
    assert n1 == n2 == n3 == sum(int((b.labels != -100).sum()) for b in singles)
    for name in mods:
        scale = float(g1[name].abs().max())
        torch.testing.assert_close(g2[name], g1[name], rtol=0, atol=1e-5 * scale)
        torch.testing.assert_close(g3[name], g2[name], rtol=0, atol=1e-9 * scale)


def test_q_k_v_and_gate_up_share_one_gram() -> None:
    model, tok = tiny_model("llama", seed=0)
    mods = target_modules(model)
    groups = input_groups(model, mods, _batches(model, tok)[0])
    as_sets = [{n.split(".")[-1] for n in g} for g in groups]
    assert as_sets.count({"q_proj", "k_proj", "v_proj"}) == 2
    assert as_sets.count({"gate_proj", "up_proj"}) == 2
    assert as_sets.count({"o_proj"}) == 2 and as_sets.count({"down_proj"}) == 2
    assert sum(len(g) for g in groups) == len(mods)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_sequential_mode_equals_one_pass_without_edits(family: str) -> None:
    model, tok = tiny_model(family, seed=4)
    mods = target_modules(model)
    batches = _batches(model, tok)
    one = actsvd_scores(model, mods, batches, mode="one-pass")
    seq = actsvd_scores(model, mods, batches, mode="sequential")
    assert set(one) == set(seq) == {f"{n}.weight" for n in mods}
    seen: list[list[str]] = []
    actsvd_scores(model, mods, batches, mode="sequential", between_blocks=lambda m: seen.append(list(m)))
    assert len(seen) == model.config.num_hidden_layers if family == "llama" else len(seen) == 2
    for k in one:
        torch.testing.assert_close(seq[k], one[k], rtol=1e-6, atol=1e-6 * float(one[k][0]))
        torch.testing.assert_close(seq.companions["basis"][k], one.companions["basis"][k], atol=1e-4, rtol=0)


def test_score_dispatches_actsvd_and_the_basis_survives_save_and_load(tmp_path: Any) -> None:
    model, tok = tiny_model("gpt2", seed=0)
    s = score(model, tok, EXAMPLES, "actsvd", batch_size=2, use_cache=False, targets=["*.mlp.*"])
    assert s.unit == "rank" and set(s.companions) == {"basis"}
    assert all(".mlp." in k for k in s) and len(s) == 4
    s.save(tmp_path / "s")
    back = Scores.load(tmp_path / "s")
    assert back.unit == "rank" and "basis" in back.companion_doc
    for k in s:
        assert torch.equal(back[k], s[k]) and torch.equal(
            back.companions["basis"][k], s.companions["basis"][k]
        )


def test_bad_settings_are_one_line_errors_before_any_forward() -> None:
    model, tok = tiny_model("llama", seed=0)
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    for bad in ({"mode": "blockwise"}, {"gram_dtype": "float16"}, {"rank": 3}):
        with pytest.raises(ExciseError) as err:
            score(model, tok, EXAMPLES, "actsvd", use_cache=False, **bad)
        assert "\n" not in str(err.value)
    assert not calls
    with pytest.raises(ExciseError, match="mode"):
        actsvd_scores(model, target_modules(model), _batches(model, tok), mode="blockwise")
