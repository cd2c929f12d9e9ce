"""Dynamic freezing, rewind, frozen masks of another model, and the analyzer's summary."""

from __future__ import annotations

import json
import re

import pytest
import torch

from excise.core import Selection
from excise.data import Example
from excise.errors import ExciseError
from excise.finetune import FinetuneArgs, finetune, rewind
from excise.models import linear_layers, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = [
    Example(f"say {w}", f"{w} {w} {w}")
    for w in ["cat", "dog", "bird", "fish", "frog", "lion", "wolf", "bear"]
]


def _random_selection(model: torch.nn.Module, frac: float, seed: int) -> Selection:
    g = torch.Generator().manual_seed(seed)
    return Selection(
        {
            f"{n}.weight": torch.rand(m.weight.shape, generator=g) < frac
            for n, m in linear_layers(model).items()
        }
    )


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_dynamic_freezing_reselects_every_n_steps_and_the_frozen_set_follows() -> None:
    model, tok = tiny_model("llama", seed=0)
    choices = [_random_selection(model, 0.3, seed=10 + i) for i in range(6)]
    snaps: list[dict[str, torch.Tensor]] = []

    def fake_scorer(m: torch.nn.Module) -> Selection:  # a different choice on every call
        snaps.append(_snapshot(m))
        return choices[len(snaps) - 1]

    changes: list[dict] = []
    args = FinetuneArgs(max_steps=7, reselect_every=2, batch_size=4, learning_rate=1e-2, weight_decay=0.1)
    finetune(model, tok, DATA, args, frozen=None, reselect=fake_scorer, changes=changes)
    final = _snapshot(model)
    # called once before training (the first set), then after steps 2, 4, 6 (7 is the last step)
    assert len(snaps) == 4
    assert [c["step"] for c in changes] == [2, 4, 6]
    for i in range(4):  # choice i is frozen from call i until call i + 1 (or the end)
        later = snaps[i + 1] if i + 1 < 4 else final
        moved = 0
        for k, m in choices[i].items():
            assert torch.equal(later[k][m], snaps[i][k][m]), (i, k)
            moved += int((later[k][~m] != snaps[i][k][~m]).sum())
        assert moved > 0  # the others trained in that interval
    for c, (prev, new) in zip(changes, zip(choices[:3], choices[1:4], strict=True), strict=True):
        added = sum(int((new[k] & ~prev[k]).sum()) for k in new)
        removed = sum(int((prev[k] & ~new[k]).sum()) for k in new)
        inter = sum(int((new[k] & prev[k]).sum()) for k in new)
        union = sum(int((new[k] | prev[k]).sum()) for k in new)
        assert (c["added"], c["removed"], c["count"]) == (added, removed, new.count())
        assert c["jaccard"] == pytest.approx(inter / union)


def test_reselect_every_below_one_is_refused() -> None:
    model, tok = tiny_model("llama", seed=0)
    with pytest.raises(ExciseError, match=r"reselect_every must be at least 1.*got 0"):
        finetune(model, tok, DATA, FinetuneArgs(reselect_every=0), reselect=lambda m: Selection({}))


def test_reselect_every_without_a_scorer_is_refused() -> None:
    model, tok = tiny_model("llama", seed=0)
    with pytest.raises(ExciseError, match="re-selection function"):
        finetune(model, tok, DATA, FinetuneArgs(reselect_every=3), _random_selection(model, 0.1, 0))


def test_empty_training_set_is_refused() -> None:
    model, tok = tiny_model("llama", seed=0)
    with pytest.raises(ExciseError, match="data set is empty"):
        finetune(model, tok, [], FinetuneArgs())


def test_rewind_restores_the_selected_weights_exactly() -> None:
    aligned, tok = tiny_model("llama", seed=0)
    attacked, _ = tiny_model("llama", seed=0)
    finetune(attacked, tok, DATA, FinetuneArgs(max_steps=3, batch_size=4, learning_rate=1e-2))
    sel = _random_selection(attacked, 0.4, seed=3)
    before = _snapshot(attacked)
    base = dict(aligned.named_parameters())
    n = rewind(attacked, sel, base=aligned)
    after = dict(attacked.named_parameters())
    assert n == sel.count()
    for k, t in after.items():
        if k in sel:
            m = sel[k]
            assert torch.equal(t.detach()[m], base[k].detach()[m]), k
            assert torch.equal(t.detach()[~m], before[k][~m]), k
            assert not torch.equal(before[k][m], base[k].detach()[m])  # the attack had moved them
        else:
            assert torch.equal(t.detach(), before[k]), k


def test_a_frozen_mask_from_another_model_is_a_clear_error() -> None:
    gpt2, _ = tiny_model("gpt2", seed=0)
    llama, tok = tiny_model("llama", seed=0)
    with pytest.raises(ExciseError, match=r"does not have.*another model"):
        finetune(llama, tok, DATA, FinetuneArgs(max_steps=1), _random_selection(gpt2, 0.1, 0))
    sel = _random_selection(llama, 0.1, 0)
    key = next(iter(sel))
    bad = Selection({**sel.tensors, key: sel[key].t().contiguous()})
    if tuple(bad[key].shape) == tuple(sel[key].shape):  # a square matrix: cut a row instead
        bad = Selection({**sel.tensors, key: sel[key][:-1]})
    with pytest.raises(ExciseError, match=rf"shape.*{re.escape(key)}|{re.escape(key)}.*shape"):
        finetune(llama, tok, DATA, FinetuneArgs(max_steps=1), bad)


def _hand_stats(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """Counts via Python sets of (tensor, flat index): independent of the tensor code under test."""
    sa = {(k, i) for k, t in a.items() for i, v in enumerate(t.reshape(-1).tolist()) if v}
    sb = {(k, i) for k, t in b.items() for i, v in enumerate(t.reshape(-1).tolist()) if v}
    return len(sa), len(sb), len(sa & sb), len(sa | sb)


def test_analysis_summary_counts_and_jaccard_against_a_hand_computation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file

    from excise.freeze_analysis import freeze_finetune
    from excise.models import load_model

    model, tok = tiny_model("llama", seed=0)
    original_weights = _snapshot(model)
    out = tmp_path / "run"
    args = FinetuneArgs(max_steps=4, batch_size=4, learning_rate=2e-2, weight_decay=0.1)
    summary = freeze_finetune(
        model, tok, DATA, args, out, method="snip", freeze_data=DATA, sparsity=0.1, config={"data": "toy"}
    )
    on_disk = json.loads((out / "analysis_summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    a = load_file(str(out / "original_safety_masks.safetensors"))
    b = load_file(str(out / "new_safety_masks.safetensors"))
    na, nb, inter, union = _hand_stats(a, b)
    assert on_disk["original_safety_critical_count"] == na
    assert on_disk["new_safety_critical_count"] == nb
    assert on_disk["intersection_count"] == inter
    assert on_disk["jaccard"] == pytest.approx(inter / union)
    assert on_disk["total_neurons"] == sum(t.numel() for t in a.values())
    # top 10% per matrix: floor(0.1 * numel) in every scored matrix
    assert na == sum(int(0.1 * t.numel()) for t in a.values())
    for field, want in {
        "prune_method": "snip",
        "sparsity_ratio": 0.1,
        "training_data": "toy",
        "num_epochs": 1.0,
        "learning_rate": 2e-2,
    }.items():
        assert on_disk[field] == want, field
    assert on_disk["config"]["finetune"]["max_steps"] == 4
    # per layer and per matrix type, by hand from the names
    for group, key_of in (
        (
            "per_layer",
            lambda k: re.search(r"\.(\d+)\.", k).group(1) if re.search(r"\.(\d+)\.", k) else "other",
        ),
        ("per_matrix_type", lambda k: re.sub(r"^.*?\.\d+\.", "", k.removesuffix(".weight"))),
    ):
        names = {key_of(k) for k in a}
        assert set(on_disk[group]) == names, group
        for g in names:
            ga = {k: v for k, v in a.items() if key_of(k) == g}
            gb = {k: v for k, v in b.items() if key_of(k) == g}
            x, y, i, u = _hand_stats(ga, gb)
            row = on_disk[group][g]
            assert (row["before"], row["after"], row["intersection"]) == (x, y, i), (group, g)
            assert row["jaccard"] == pytest.approx(i / u if u else 1.0)
    # the frozen weights of the saved model are the original ones, bit for bit
    saved, _ = load_model(out)
    params = dict(saved.named_parameters())
    for k, m in a.items():
        assert torch.equal(params[k].detach()[m], original_weights[k][m]), k
    assert not (tmp_path / "run").with_name(".run.tmp").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temp folder left behind


def test_output_folder_that_is_not_empty_is_refused_without_overwrite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from excise.freeze_analysis import freeze_finetune

    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    model, tok = tiny_model("llama", seed=0)
    before = _snapshot(model)
    with pytest.raises(ExciseError, match="not empty.*--overwrite"):
        freeze_finetune(
            model, tok, DATA, FinetuneArgs(max_steps=1), out, frozen=_random_selection(model, 0.1, 0)
        )
    assert (out / "notes.txt").read_text() == "mine"
    assert all(torch.equal(v, before[k]) for k, v in _snapshot(model).items())  # no work was done
