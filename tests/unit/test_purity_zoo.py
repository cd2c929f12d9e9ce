"""The built-in CLIP recipes without training: cache keys, the shapes data, captions and tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from excise.zoo import shapes as S
from excise.zoo.clip import RECIPES, _shape_train, eval_set

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_cache_key_covers_the_recipe_and_the_caption_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = RECIPES["shapes-clip"]
    key = rec.key()
    assert rec.model_copy(update={"epochs": rec.epochs + 1}).key() != key
    monkeypatch.setattr(S, "TRAIN_TEMPLATES", (*S.TRAIN_TEMPLATES, "a {shape}"))
    assert rec.key() != key
    assert RECIPES["digits-clip"].key() != key


def test_held_out_combinations_never_appear_in_training() -> None:
    rec = RECIPES["shapes-clip"].model_copy(update={"per_combo": 3})
    data = _shape_train(rec)
    pairs = {(S.SHAPES[a], list(S.COLOURS)[b]) for a, b in data.attrs[:, :2].tolist()}
    assert pairs == set(S.seen_combinations()) and not pairs & set(S.HELD_OUT)
    assert not any(f"{c} {s}" in cap for s, c in S.HELD_OUT for cap in data.captions)
    test = eval_set("shapes")
    assert {test.classes[i] for i in test.labels.tolist()} == {f"{c} {s}" for s, c in S.HELD_OUT}
    assert not set(test.templates) & set(S.TRAIN_TEMPLATES)
    # every word of the held-out class names was seen in training (only the pairing is new)
    assert {w for s, c in S.HELD_OUT for w in (s, c)} <= set(S.vocabulary())


def test_the_truth_matrix_matches_the_caption_rule() -> None:
    rec = RECIPES["shapes-clip"].model_copy(update={"per_combo": 4})
    data = _shape_train(rec)
    rng = np.random.default_rng(0)
    items = S.sample_items(S.seen_combinations(), 4, np.random.default_rng(rec.seed))
    idx = torch.tensor(rng.choice(len(items), 20, replace=False))
    tpl = torch.tensor(rng.integers(0, len(S.TRAIN_TEMPLATES), 20))
    truth = data.truth(idx, tpl)
    for i in range(20):
        for j in range(20):
            expect = S.caption_matches(S.TRAIN_TEMPLATES[int(tpl[j])], items[int(idx[j])], items[int(idx[i])])
            assert bool(truth[i, j]) == expect, (i, j)
    assert truth.diagonal().all()


def test_the_word_tokenizer_maps_unseen_words_to_unk() -> None:
    from excise.models.clip import build_tokenizer

    tok = build_tokenizer(["a", "red", "circle"], max_length=8)
    ids = tok(["A red circle", "a photo of a red circle"])["input_ids"]
    v = tok.get_vocab()
    assert ids[0] == [v["[BOS]"], v["a"], v["red"], v["circle"], v["[EOS]"]]
    assert ids[1].count(v["[UNK]"]) == 2


def test_draw_is_deterministic_and_puts_the_shape_where_the_caption_says() -> None:
    items = [S.ShapeItem("square", "red", "large", "left"), S.ShapeItem("circle", "blue", "small", "right")]
    a = S.draw(items, np.random.default_rng(1))
    assert torch.equal(a, S.draw(items, np.random.default_rng(1)))
    red = (a[0, 0] - a[0, 2]) > 0.8  # shape pixels: red minus blue is about 1.6, background about 0
    assert red[:, :8].sum() > 20 and red[:, 8:].sum() == 0
    blue = (a[1, 2] - a[1, 0]) > 0.8
    assert blue[:, 8:].sum() > 5 and blue[:, :8].sum() == 0
    assert red.sum() > 2 * blue.sum()  # large vs small
