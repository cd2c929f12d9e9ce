"""Head interventions: mask == zeroed columns, merge of duplicated heads is exact, physical removal."""

from __future__ import annotations

import pytest
import torch

from excise.core import Selection
from excise.data import Encoded, collate
from excise.errors import ExciseError
from excise.interventions.heads import duplicate_heads, mask_heads, merge_heads, remove_heads, zero_heads
from excise.models import tiny_model
from excise.scoring.heads import head_distance_scores, head_outputs, head_sites
from excise.selection_heads import select_heads

pytestmark = pytest.mark.usefixtures("one_thread")
FAMILIES = ("llama", "gpt2", "opt", "bloom", "gpt_neox")


def make_batch(seed=0, lengths=(9, 6, 11)):
    gen = torch.Generator().manual_seed(seed)
    items = [Encoded(tuple(torch.randint(3, 250, (n,), generator=gen).tolist()), 3) for n in lengths]
    return collate(items, pad_token_id=256)


def logits(model, batch):
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return out[batch.attention_mask.bool()]


def hand_selection(model, pruned: dict[int, dict[int, int]]):
    """Selection pruning head -> kept head per layer index, e.g. {0: {2: 0}}."""
    sites = list(head_sites(model))
    h = (
        model.config.num_attention_heads
        if hasattr(model.config, "num_attention_heads")
        else model.config.n_head
    )
    masks, kept_for = {}, {}
    for li, key in enumerate(sites):
        m = torch.zeros(h, dtype=torch.bool)
        kept = list(range(h))
        for head, src in pruned.get(li, {}).items():
            m[head] = True
            kept[head] = src
        masks[key] = m
        kept_for[key] = kept
    return Selection(masks, unit="head", meta={"kept_for": kept_for})


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_hook_equals_zeroed_columns_and_restores(family):
    model, _ = tiny_model(family, seed=3)
    batch = make_batch()
    base = logits(model, batch)
    sel = hand_selection(model, {0: {1: 0, 3: 2}, 1: {2: 0}})
    with mask_heads(model, sel):
        masked = logits(model, batch)
        outs = head_outputs(model, batch)  # the pruned heads' outputs reach the projection as 0
    assert not torch.allclose(masked, base)
    torch.testing.assert_close(logits(model, batch), base, rtol=0, atol=0)  # restored exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zero_heads(model, sel)
    torch.testing.assert_close(logits(model, batch), masked, rtol=1e-6, atol=1e-6)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k.endswith("weight") for k in changed)
    assert len(outs) == 2


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "gpt_neox"])
def test_merge_of_artificially_duplicated_head_keeps_logits(family):
    model, _ = tiny_model(family, seed=5, kv_heads=4) if family == "llama" else tiny_model(family, seed=5)
    batch = make_batch(seed=1)
    sel = hand_selection(model, {0: {2: 0}, 1: {3: 1, 2: 0}})
    duplicate_heads(model, sel)  # the pruned heads become copies of their kept heads
    outs = head_outputs(model, batch)
    valid = batch.attention_mask.bool()
    torch.testing.assert_close(outs[0][valid][:, 2], outs[0][valid][:, 0])
    torch.testing.assert_close(outs[1][valid][:, 3], outs[1][valid][:, 1])
    dup = logits(model, batch)
    merge_heads(model, sel)
    torch.testing.assert_close(logits(model, batch), dup, rtol=1e-5, atol=1e-5)
    o = next(iter(head_sites(model).values()))
    w = o.weight if type(o).__name__ != "Conv1D" else o.weight.T
    assert torch.all(w[:, 2 * 16 : 3 * 16] == 0)


def test_merge_of_distinct_heads_changes_logits_and_needs_kept_heads():
    model, _ = tiny_model("opt", seed=0)
    batch = make_batch()
    base = logits(model, batch)
    sel = hand_selection(model, {0: {2: 0}})
    merge_heads(model, sel)
    assert not torch.allclose(logits(model, batch), base, atol=1e-4)
    bare = Selection(dict(sel), unit="head")
    with pytest.raises(ExciseError, match="kept head"):
        merge_heads(model, bare)


def test_duplication_under_gqa_only_within_a_kv_group():
    model, _ = tiny_model("llama", seed=0)  # 4 heads, 2 kv heads: groups {0,1} {2,3}
    duplicate_heads(model, hand_selection(model, {0: {1: 0}}))
    outs = head_outputs(model, make_batch())
    torch.testing.assert_close(outs[0][..., 1, :], outs[0][..., 0, :])
    with pytest.raises(ExciseError, match="different key/value heads"):
        duplicate_heads(model, hand_selection(model, {0: {2: 0}}))


def test_physical_removal_equals_masked_model_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny_model("llama", seed=6, kv_heads=4)
    batch = make_batch(seed=2)
    scores = head_distance_scores(model, [batch], metric="cosine")
    sel = select_heads(scores, 0.5, budget="balanced")
    with mask_heads(model, sel):
        masked = logits(model, batch)
    n_before = sum(p.numel() for p in model.parameters())
    remove_heads(model, sel)
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads == 2
    assert sum(p.numel() for p in model.parameters()) < n_before
    torch.testing.assert_close(logits(model, batch), masked, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path / "small")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "small", attn_implementation="eager")
    back.eval()
    assert back.model.layers[0].self_attn.q_proj.weight.shape == (32, 64)
    torch.testing.assert_close(logits(back, batch), masked, rtol=1e-5, atol=1e-5)


def test_physical_removal_refusals():
    model, _ = tiny_model("llama", seed=0)  # grouped-query attention
    with pytest.raises(ExciseError, match="grouped-query attention"):
        remove_heads(model, hand_selection(model, {0: {1: 0}, 1: {1: 0}}))
    model, _ = tiny_model("llama", seed=0, kv_heads=4)
    with pytest.raises(ExciseError, match="balanced"):
        remove_heads(model, hand_selection(model, {0: {1: 0}, 1: {1: 0, 2: 0}}))
    model, _ = tiny_model("opt", seed=0)
    with pytest.raises(ExciseError, match="hidden_size / heads.*merge_heads"):
        remove_heads(model, hand_selection(model, {0: {1: 0}, 1: {1: 0}}))


def test_interventions_refuse_other_units_and_shapes():
    model, _ = tiny_model("gpt2", seed=0)
    w = Selection({"transformer.h.0.attn.c_proj": torch.zeros(4, dtype=torch.bool)}, unit="neuron")
    with pytest.raises(ExciseError, match="unit 'head'.*got unit 'neuron'"):
        zero_heads(model, w)
    bad = Selection({"transformer.h.0.attn.c_proj": torch.zeros(3, dtype=torch.bool)}, unit="head")
    with pytest.raises(ExciseError, match="expected \\(4,\\)"):
        zero_heads(model, bad)
    every = Selection({"transformer.h.0.attn.c_proj": torch.ones(4, dtype=torch.bool)}, unit="head")
    with pytest.raises(ExciseError, match="every head"):
        zero_heads(model, every)
