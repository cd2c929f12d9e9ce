"""Head representations, distances and gradient importance against independent computations."""

from __future__ import annotations

import math

import pytest
import torch

from excise.data import Encoded, collate
from excise.models import tiny_model
from excise.models.adapters import get_layout
from excise.scoring import score
from excise.scoring.heads import (
    attention_patterns,
    distances_from_gram,
    gate_gradients,
    head_distance_scores,
    head_gram,
    head_importance_scores,
    head_outputs,
)

pytestmark = pytest.mark.usefixtures("one_thread")
FAMILIES = ("llama", "gpt2", "opt", "bloom", "gpt_neox")


def make_batch(seed: int = 0, lengths: tuple[int, ...] = (9, 6, 11), n_prompt: int = 3):
    gen = torch.Generator().manual_seed(seed)
    items = [Encoded(tuple(torch.randint(3, 250, (n,), generator=gen).tolist()), n_prompt) for n in lengths]
    return collate(items, pad_token_id=256)


# ---------------------------------------------------------------- independent attention, per head


def _rotate_half(x):
    a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat([-b, a], -1)


def _rope(x, theta):
    """x (T, hd): rotary embedding with positions 0..T-1 (the rotate-half convention)."""
    t, hd = x.shape
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    return x * emb.cos() + _rotate_half(x) * emb.sin()


def _rope_theta(cfg):
    rp = getattr(cfg, "rope_parameters", None) or {}
    return float(rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))


def manual_heads(model, family, layer, x):
    """Per-head (output, pattern) of one layer for ONE unpadded sample x (T, hidden), written from scratch."""
    cfg = model.config
    lay = get_layout(model)
    attn = model.get_submodule(lay.layers)[layer].get_submodule(lay.o.rsplit(".", 1)[0])
    t = x.shape[0]
    if family == "llama":
        h, kv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = attn.q_proj(x).view(t, h, hd)
        k = attn.k_proj(x).view(t, kv, hd)
        v = attn.v_proj(x).view(t, kv, hd)
        k = k[:, [i // (h // kv) for i in range(h)]]
        v = v[:, [i // (h // kv) for i in range(h)]]
    elif family == "gpt2":
        h = cfg.n_head
        hd = cfg.n_embd // h
        qkv = x @ attn.c_attn.weight + attn.c_attn.bias  # Conv1D: (in, out)
        q, k, v = (p.view(t, h, hd) for p in qkv.split(cfg.n_embd, -1))
    elif family == "opt":
        h = cfg.num_attention_heads
        hd = cfg.hidden_size // h
        q, k, v = (m(x).view(t, h, hd) for m in (attn.q_proj, attn.k_proj, attn.v_proj))
    else:  # bloom, gpt_neox: fused per head [q | k | v]
        h = cfg.num_attention_heads if family == "gpt_neox" else cfg.n_head
        hd = cfg.hidden_size // h
        fused = attn.query_key_value(x).view(t, h, 3, hd)
        q, k, v = fused[:, :, 0], fused[:, :, 1], fused[:, :, 2]
    outs, pats = [], []
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(h):
        qi, ki, vi = q[:, i], k[:, i], v[:, i]
        if family in ("llama", "gpt_neox"):
            qi, ki = _rope(qi, _rope_theta(cfg)), _rope(ki, _rope_theta(cfg))
        s = (qi @ ki.T) / math.sqrt(hd)
        if family == "bloom":
            slope = 2.0 ** (-8.0 * (i + 1) / h)  # ALiBi slopes for a power-of-two head count
            s = s + slope * torch.arange(t, dtype=torch.float32)[None, :]
        s = s.masked_fill(~causal, float("-inf"))
        p = torch.softmax(s.float(), -1)
        outs.append(p @ vi)
        pats.append(p)
    return torch.stack(outs, 1), torch.stack(pats, 0)  # (T, H, hd), (H, T, T)


def attention_inputs(model, batch):
    """The hidden states entering every attention module (captured with a pre-hook)."""
    lay = get_layout(model)
    layers = model.get_submodule(lay.layers)
    got = {}
    handles = []
    for i, layer in enumerate(layers):
        mod = layer.get_submodule(lay.o.rsplit(".", 1)[0])

        def pre(_m, args, kwargs, i=i):
            got[i] = (args[0] if args else kwargs["hidden_states"]).detach()

        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
    try:
        with torch.no_grad():
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    finally:
        for hd in handles:
            hd.remove()
    return [got[i] for i in range(len(layers))]


@pytest.mark.parametrize("family", FAMILIES)
def test_head_outputs_and_patterns_equal_independent_per_head_attention(family):
    model, _ = tiny_model(family, seed=1)
    batch = make_batch(lengths=(9, 6, 11))
    outs = head_outputs(model, batch)
    pats = attention_patterns(model, batch)
    xs = attention_inputs(model, batch)
    assert len(outs) == model.config.num_hidden_layers
    with torch.no_grad():
        for layer, (o, p, x) in enumerate(zip(outs, pats, xs, strict=True)):
            for b in range(len(batch)):
                n = int(batch.attention_mask[b].sum())
                want_o, want_p = manual_heads(model, family, layer, x[b, :n])
                torch.testing.assert_close(o[b, :n], want_o, atol=2e-5, rtol=1e-4)
                torch.testing.assert_close(p[b, :, :n, :n], want_p, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("family", ["llama", "bloom"])
@pytest.mark.parametrize("representation", ["output", "pattern"])
def test_gram_excludes_padding(family, representation):
    """A padded batch gives the same Gram matrix as each sample alone without padding."""
    model, _ = tiny_model(family, seed=2)
    lengths = (10, 4, 7)
    batch = make_batch(seed=3, lengths=lengths)
    g, n = head_gram(model, [batch], representation)
    singles = []
    for b, length in enumerate(lengths):
        items = [Encoded(tuple(batch.input_ids[b, :length].tolist()), 3)]
        singles.append(collate(items, 256))
    g1, n1 = head_gram(model, singles, representation)
    assert n == n1 == (sum(lengths) if representation == "output" else sum(k * (k + 1) // 2 for k in lengths))
    torch.testing.assert_close(g, g1, rtol=1e-5, atol=1e-7)


def test_distances_equal_naive_pairwise_loops():
    model, _ = tiny_model("opt", seed=0)
    batches = [make_batch(seed=s) for s in range(2)]
    rows = []  # naive: every head's outputs at valid tokens, concatenated over batches
    for batch in batches:
        outs = head_outputs(model, batch)
        valid = batch.attention_mask.bool()
        rows.append(torch.cat([o[valid].permute(1, 0, 2) for o in outs], 0))  # (L*H, N, hd)
    r = torch.cat(rows, 1).double()
    n_tok = r.shape[1]
    g, n = head_gram(model, batches)
    assert n == n_tok
    d_e = distances_from_gram(g, n, "euclidean")
    d_c = distances_from_gram(g, n, "cosine")
    for a in range(r.shape[0]):
        for b in range(r.shape[0]):
            if a == b:
                continue
            want_e = ((r[a] - r[b]) ** 2).sum().div(n_tok).sqrt()
            want_c = 1 - torch.nn.functional.cosine_similarity(r[a].reshape(-1), r[b].reshape(-1), dim=0)
            assert abs(float(d_e[a, b]) - float(want_e)) < 1e-6 * max(1.0, float(want_e))
            assert abs(float(d_c[a, b]) - float(want_c)) < 1e-9


def test_distance_scores_shape_companions_and_llama_gqa():
    model, tok = tiny_model("llama", seed=0)  # 4 heads, 2 key/value heads
    s = head_distance_scores(model, [make_batch()], metric="cosine")
    assert s.unit == "head"
    assert s.meta["kv_group"] == [0, 0, 1, 1] and s.meta["n_kv_heads"] == 2
    keys = list(s)
    assert keys == ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"]
    full = s.companions["distance_all"]["heads"]
    assert full.shape == (8, 8) and torch.equal(full, full.T)
    for i, k in enumerate(keys):
        d = s.companions["distance"][k]
        assert torch.equal(d, full[4 * i : 4 * i + 4, 4 * i : 4 * i + 4])
        off = d + torch.diag(torch.full((4,), float("inf"), dtype=d.dtype))
        torch.testing.assert_close(s[k], off.min(1).values.float())
    r1 = head_distance_scores(model, [], metric="random", seed=5)
    r2 = head_distance_scores(model, [], metric="random", seed=5)
    assert torch.equal(r1.companions["distance_all"]["heads"], r2.companions["distance_all"]["heads"])


def test_score_dispatches_head_methods_and_saves_companions(tmp_path):
    from excise.core import Scores
    from excise.data import Example

    model, tok = tiny_model("gpt2", seed=0)
    ex = [Example(prompt=f"question {i}", response=f"answer {i} ok") for i in range(4)]
    s = score(model, tok, ex, method="heads", metric="euclidean", use_cache=False)
    assert s.unit == "head" and s.meta["metric"] == "euclidean"
    s.save(tmp_path / "h")
    back = Scores.load(tmp_path / "h")
    assert torch.equal(back.companions["distance_all"]["heads"], s.companions["distance_all"]["heads"])
    imp = score(model, tok, ex, method="head-importance", use_cache=False)
    assert imp.unit == "head"
    for k in imp:
        assert abs(float(imp[k].norm()) - 1.0) < 1e-5


def test_unsupported_family_is_named():
    from excise.errors import ExciseError

    class Cfg:
        model_type = "t5"

    m = torch.nn.Linear(2, 2)
    m.config = Cfg()
    with pytest.raises(ExciseError, match="supported families: llama"):
        head_distance_scores(m, [], metric="random")


# ---------------------------------------------------------------- gradient head importance


@pytest.mark.parametrize("family", ["llama", "gpt2", "bloom"])
def test_head_importance_equals_naive_per_sample_per_head_autograd(family):
    """E_x |dL(x)/dxi_h| against a loop over samples and heads, one scalar gate at a time."""
    from excise.scoring.snip import sample_losses

    model, _ = tiny_model(family, seed=4)
    batch = make_batch(seed=7, lengths=(8, 5, 10))
    s = head_importance_scores(model, [batch], normalize=False)
    lay = get_layout(model)
    layers = model.get_submodule(lay.layers)
    h = s.meta["n_heads"]
    hd = s.meta["head_dim"]
    for p in model.parameters():
        p.requires_grad_(False)
    for li, key in enumerate(s):
        o_proj = layers[li].get_submodule(lay.o)
        want = torch.zeros(h, dtype=torch.float64)
        for b in range(len(batch)):
            n = int(batch.attention_mask[b].sum())
            one = collate([Encoded(tuple(batch.input_ids[b, :n].tolist()), 3)], 256)
            for head in range(h):
                gate = torch.ones((), requires_grad=True)

                def pre(_m, inputs, gate=gate, head=head):
                    x = inputs[0]
                    lo, hi = head * hd, (head + 1) * hd
                    return (torch.cat([x[..., :lo], x[..., lo:hi] * gate, x[..., hi:]], -1),)

                handle = o_proj.register_forward_pre_hook(pre)
                try:
                    out = model(input_ids=one.input_ids, attention_mask=one.attention_mask, use_cache=False)
                    sample_losses(out.logits, one).sum().backward()
                finally:
                    handle.remove()
                want[head] += abs(float(gate.grad))
        want /= len(batch)
        torch.testing.assert_close(s[key].double(), want, rtol=1e-4, atol=1e-7)
    norm = head_importance_scores(model, [batch], normalize=True)
    for key in s:
        torch.testing.assert_close(norm[key], s[key] / s[key].norm(), rtol=1e-5, atol=1e-8)


def test_gate_gradients_are_per_sample():
    """Sample b's gate gradient does not change when the other samples of the batch change."""
    model, _ = tiny_model("opt", seed=0)
    a = make_batch(seed=1, lengths=(7, 9))
    b = make_batch(seed=2, lengths=(7, 9))
    b.input_ids[0] = a.input_ids[0]
    b.labels[0] = a.labels[0]
    b.attention_mask[0] = a.attention_mask[0]
    ga, gb = gate_gradients(model, a), gate_gradients(model, b)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-5, atol=1e-8)
    assert not torch.allclose(ga[1], gb[1])


def test_patterns_switch_sdpa_to_eager_for_the_pass_only():
    model, _ = tiny_model("llama", seed=0)
    batch = make_batch()
    want = attention_patterns(model, batch)  # eager already
    model.set_attn_implementation("sdpa")
    got = attention_patterns(model, batch)
    assert model.config._attn_implementation == "sdpa"
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
