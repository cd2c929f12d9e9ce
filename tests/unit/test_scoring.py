"""Scoring methods against independent computations: autograd loops, stored activations, closed forms."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import excise.scoring as scoring
from excise.core import Scores
from excise.data import Batch, Example, make_batches, per_sample_loss
from excise.errors import ExciseError
from excise.models import tiny_model
from excise.models.adapters import linear_layers
from excise.scoring import score
from excise.scoring.snip import snip_abs_grads
from excise.scoring.wanda import input_sq_norms

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


EXAMPLES = [
    Example("How do I bake bread?", "Mix flour, water and yeast; knead, rise, bake."),
    Example("What is 2+2?", "4"),
    Example("Name a colour, please, and say why you like it.", "Blue, because of the sea."),
    Example("Say hi.", "Hello there! How can I help you today?"),
    Example("", "plain text sample scored on every token", chat=False),
]


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def naive_snip(
    model: torch.nn.Module, tok: object, examples: list[Example], keys: list[str]
) -> dict[str, torch.Tensor]:
    """One sample at a time with ordinary autograd: sum_x |W * dL(x)/dW|."""
    params = _params(model)
    acc = {k: torch.zeros_like(params[k], dtype=torch.float32) for k in keys}
    for ex in examples:
        (b,) = make_batches(tok, [ex], batch_size=1)
        model.zero_grad(set_to_none=True)
        loss = per_sample_loss(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b)
        loss.sum().backward()
        for k in keys:
            acc[k] += (params[k].detach().float() * params[k].grad.float()).abs()
    model.zero_grad(set_to_none=True)
    return acc


def batched_wrong(
    model: torch.nn.Module, tok: object, examples: list[Example], keys: list[str]
) -> dict[str, torch.Tensor]:
    """|W * sum_x dL(x)/dW| from one plain batched backward (what SNIP is not)."""
    params = _params(model)
    (b,) = make_batches(tok, examples, batch_size=len(examples))
    model.zero_grad(set_to_none=True)
    per_sample_loss(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b).sum().backward()
    out = {k: (params[k].detach() * params[k].grad).abs() for k in keys}
    model.zero_grad(set_to_none=True)
    return out


def naive_wanda(
    model: torch.nn.Module, tok: object, examples: list[Example], positions: str = "response"
) -> dict[str, torch.Tensor]:
    """Store every layer input of every scored position, then |W| * column norms.

    ``response``: positions t whose own token is a response token (label[t] != -100, as the reference
    code's ``inp[tar.ne(-100)]``); ``next``: positions whose next token is one (label[t + 1] != -100).
    """
    mods = linear_layers(model)
    stored: dict[str, list[torch.Tensor]] = {n: [] for n in mods}
    for ex in examples:
        (b,) = make_batches(tok, [ex], batch_size=1)
        labels = b.labels[0]
        if positions == "response":
            keep = [t for t in range(labels.shape[0]) if int(labels[t]) != -100]
        else:
            keep = [t for t in range(labels.shape[0] - 1) if int(labels[t + 1]) != -100]
        handles = []
        for n, m in mods.items():
            handles.append(
                m.register_forward_hook(
                    lambda _m, inp, _o, n=n, keep=keep: stored[n].append(
                        inp[0].detach().reshape(-1, inp[0].shape[-1])[keep].clone()
                    )
                )
            )
        with torch.no_grad():
            model(input_ids=b.input_ids, attention_mask=b.attention_mask)
        for h in handles:
            h.remove()
    out = {}
    for n, m in mods.items():
        X = torch.cat(stored[n])  # (tokens, in)
        norms = X.double().pow(2).sum(0).sqrt().float()
        w = m.weight.detach().abs()
        out[f"{n}.weight"] = w * (norms[None, :] if type(m).__name__ != "Conv1D" else norms[:, None])
    return out


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rtol: float = 1e-4) -> None:
    assert set(a) == set(b)
    for k in a:
        scale = float(b[k].abs().max())
        torch.testing.assert_close(a[k], b[k].to(a[k].dtype), rtol=rtol, atol=rtol * scale, msg=k)


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "bloom", "gpt_neox"])
def test_snip_equals_one_sample_at_a_time_autograd(family: str) -> None:
    model, tok = tiny_model(family, seed=1)
    s = score(model, tok, EXAMPLES, "snip", batch_size=3, use_cache=False)
    ref = naive_snip(model, tok, EXAMPLES, list(s))
    _assert_close(dict(s.items()), ref)
    # and it is not the plain batched backward |W * sum g|
    wrong = batched_wrong(model, tok, EXAMPLES, list(s))
    rel = sum(float((s[k] - wrong[k]).abs().sum()) for k in s) / sum(float(s[k].abs().sum()) for k in s)
    assert rel > 0.05
    # no ordinary gradients were computed, and the requires_grad flags are back
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "bloom", "gpt_neox"])
def test_wanda_equals_stored_activations(family: str) -> None:
    """Default: the response-token positions themselves; ``positions="next"`` the shifted ones."""
    model, tok = tiny_model(family, seed=2)
    s = score(model, tok, EXAMPLES, "wanda", batch_size=2, use_cache=False)
    _assert_close(dict(s.items()), naive_wanda(model, tok, EXAMPLES, "response"))
    nxt = score(model, tok, EXAMPLES, "wanda", batch_size=2, use_cache=False, positions="next")
    _assert_close(dict(nxt.items()), naive_wanda(model, tok, EXAMPLES, "next"))
    assert any(not torch.allclose(s[k], nxt[k]) for k in s)  # the two conventions really differ


def test_wanda_rows_is_a_neuron_method_equal_to_row_sums_of_stored_activations() -> None:
    """Structured Wanda: S_i = sum_j |W_ij| ||X_j||, one score per output neuron (GPT-2: per column)."""
    for family in ("llama", "gpt2"):
        model, tok = tiny_model(family, seed=3)
        s = score(model, tok, EXAMPLES, "wanda-rows", batch_size=2, use_cache=False)
        assert s.unit == "neuron"
        ref = naive_wanda(model, tok, EXAMPLES, "response")
        mods = linear_layers(model)
        for k, t in s.items():
            axis = 0 if type(mods[k.removesuffix(".weight")]).__name__ == "Conv1D" else 1
            want = ref[k].double().sum(dim=axis).float()
            assert t.shape == want.shape
            torch.testing.assert_close(t, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_unknown_method_setting_is_a_clear_error() -> None:
    model, tok = tiny_model("llama")
    with pytest.raises(
        ExciseError, match=r"scoring method 'wanda': unknown key 'positons'.*settings are: targets, positions"
    ):
        score(model, tok, EXAMPLES, "wanda", use_cache=False, positons="next")
    with pytest.raises(ExciseError, match=r"'positions'.*'response' or 'next'"):
        score(model, tok, EXAMPLES, "wanda", use_cache=False, positions="previous")


def test_scores_layout_and_magnitude() -> None:
    model, tok = tiny_model("gpt2", seed=0)
    s = score(model, tok, None, "magnitude", use_cache=False)
    params = _params(model)
    assert s.unit == "weight" and "lm_head.weight" not in s
    assert set(s) == {f"{n}.weight" for n in linear_layers(model)}
    for k, t in s.items():
        assert t.dtype == torch.float32 and t.device.type == "cpu"
        assert t.shape == params[k].shape  # Conv1D keeps its (in, out) shape
        assert torch.equal(t, params[k].detach().abs())
    assert s.meta["in_axis"]["transformer.h.0.mlp.c_fc.weight"] == 0


def test_targets_are_globs() -> None:
    model, tok = tiny_model("llama")
    s = score(model, tok, None, "magnitude", targets=["*.mlp.down_proj", "lm_head"], use_cache=False)
    assert sorted(s) == [
        "lm_head.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ]
    with pytest.raises(ExciseError, match="no linear layer matches"):
        score(model, tok, None, "magnitude", targets=["nothing.*"], use_cache=False)


def _pad(b: Batch, extra: int, seed: int = 0) -> Batch:
    """Append ``extra`` padded positions holding random (not pad) tokens."""
    g = torch.Generator().manual_seed(seed)
    B = b.input_ids.shape[0]
    junk = torch.randint(3, 200, (B, extra), generator=g)
    return Batch(
        torch.cat([b.input_ids, junk], 1),
        torch.cat([b.attention_mask, torch.zeros(B, extra, dtype=torch.long)], 1),
        torch.cat([b.labels, torch.full((B, extra), -100, dtype=torch.long)], 1),
    )


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_padding_never_changes_a_score(family: str) -> None:
    model, tok = tiny_model(family, seed=3)
    mods = linear_layers(model)
    short, long1, long2 = EXAMPLES[1], EXAMPLES[0], EXAMPLES[3]
    (alone,) = make_batches(tok, [short], batch_size=1)
    (together,) = make_batches(tok, [short, long1, long2], batch_size=3)  # short is right-padded here
    (longs,) = make_batches(tok, [long1, long2], batch_size=2)
    assert int(together.attention_mask[0].sum()) < together.input_ids.shape[1]
    for fn in (snip_abs_grads, input_sq_norms):
        a = fn(model, mods, [alone])
        padded = fn(model, mods, [_pad(alone, 7)])
        both = fn(model, mods, [together])
        rest = fn(model, mods, [longs])
        for n in mods:
            torch.testing.assert_close(padded[n], a[n], rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(
                both[n], a[n] + rest[n], rtol=1e-4, atol=1e-6 * float(both[n].abs().max())
            )


def test_cache_hit_computes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCISE_CACHE_DIR", str(tmp_path))
    calls: list[int] = []
    real = scoring.METHODS["wanda"]

    def counting(model, tok, batches, cfg):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real.fn(model, tok, batches, cfg)

    monkeypatch.setitem(scoring.METHODS, "wanda", dataclasses.replace(real, fn=counting))
    model, tok = tiny_model("llama")
    first = score(model, tok, EXAMPLES, "wanda")
    second = score(model, tok, EXAMPLES, "wanda", batch_size=2)
    assert len(calls) == 1
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert second.meta["cache_key"] == first.meta["cache_key"]
    assert list(tmp_path.glob("scores/*.safetensors"))
    score(model, tok, EXAMPLES[:3], "wanda")  # other data -> computed
    assert len(calls) == 2
    score(model, tok, EXAMPLES, "wanda", use_cache=False)
    assert len(calls) == 3
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # other weights -> computed
    score(model, tok, EXAMPLES, "wanda")
    assert len(calls) == 4


def test_batches_and_examples_are_the_same_data() -> None:
    model, tok = tiny_model("llama")
    batches = make_batches(tok, EXAMPLES, batch_size=2)
    a = score(model, tok, batches, "snip", use_cache=False)
    b = score(model, tok, EXAMPLES, "snip", batch_size=4, use_cache=False)
    _assert_close(dict(a.items()), dict(b.items()))


def test_data_from_file(tmp_path: Path) -> None:
    model, tok = tiny_model("llama")
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "bye", "response": "see you"}\n')
    s = score(model, tok, str(f), "wanda", use_cache=False)
    assert isinstance(s, Scores) and len(s) == 14


def _float64_snip_from_captured(model: torch.nn.Module, batches: list[Batch]) -> dict[str, torch.Tensor]:
    """|W| * sum_b |g_b^T x_b| in float64 from the layer inputs and output gradients of the same batches."""
    from excise.scoring.snip import sample_losses

    mods = linear_layers(model)
    acc = {n: torch.zeros(m.weight.shape, dtype=torch.float64) for n, m in mods.items()}

    def one_batch(b: Batch) -> None:
        keep = b.attention_mask.to(torch.float64).unsqueeze(-1)
        xs: dict[str, torch.Tensor] = {}

        def on_grad(g: torch.Tensor, n: str) -> None:
            acc[n] += torch.einsum("bto,bti->boi", g.double() * keep, xs[n].double()).abs().sum(0)

        def fwd(m, inp, out, n):  # type: ignore[no-untyped-def]
            xs[n] = inp[0].detach()
            out.register_hook(lambda g, n=n: on_grad(g, n))

        handles = [m.register_forward_hook(lambda m, i, o, n=n: fwd(m, i, o, n)) for n, m in mods.items()]
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        sample_losses(out.logits, b).sum().backward()
        for h in handles:
            h.remove()

    for b in batches:
        one_batch(b)
    model.zero_grad(set_to_none=True)
    return {f"{n}.weight": acc[n] * mods[n].weight.detach().double().abs() for n in mods}


def test_bf16_snip_accumulates_in_float32() -> None:
    """A bfloat16 model's scores hold float32 precision: a bf16 accumulator (8 bits) would not.

    Reference: the same batches, layer inputs and output gradients captured by hand, summed in
    float64. A float32 accumulator is within ~1e-6 of it; a bfloat16 one is off by ~1e-3.
    """
    model, tok = tiny_model("llama", seed=4)
    model16 = model.to(torch.bfloat16)
    batches = make_batches(tok, EXAMPLES, batch_size=2)
    s16 = score(model16, tok, batches, "snip", use_cache=False)
    assert all(t.dtype == torch.float32 for t in s16.values())
    assert all(p.dtype == torch.bfloat16 for p in model16.parameters())
    ref = _float64_snip_from_captured(model16, batches)
    for k in ref:
        rel = ((s16[k].double() - ref[k]).abs() / ref[k].abs().clamp_min(1e-30))[ref[k] > 0]
        assert float(rel.max()) < 2e-5, (k, float(rel.max()))


@pytest.mark.parametrize(
    ("data", "method", "match"),
    [
        (EXAMPLES, "grad-norm", "unknown scoring method 'grad-norm'; choose one of: magnitude, wanda, snip"),
        (None, "snip", "needs calibration data"),
        ([], "wanda", "empty"),
        ("/nonexistent/file.jsonl", "wanda", "data file not found"),
        ([Example("x " * 300, "y")], "snip", "more than the context"),
    ],
)
def test_bad_input_is_a_clear_error(data: object, method: str, match: str) -> None:
    model, tok = tiny_model("llama")
    with pytest.raises(ExciseError, match=match):
        score(model, tok, data, method, use_cache=False)  # type: ignore[arg-type]
