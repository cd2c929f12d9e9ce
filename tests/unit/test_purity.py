"""Feature purity of CLIP projections: the score against a naive loop, both orientations, open_clip
state dicts by path, the feature intervention, the random baseline and per-feature ablation."""

from __future__ import annotations

import math

import pytest
import torch

from excise.core import Selection
from excise.errors import ExciseError
from excise.models.clip import StateDictModel, load_projection_model, projection_weights, tiny_clip
from excise.scoring import score
from excise.scoring.purity import FEATURE_KEY, purity_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def naive_measures(mats: list[torch.Tensor]) -> dict[str, list[float]]:
    """Double loop over feature pairs of (features, inputs) matrices, in float64."""
    n = mats[0].shape[0]
    out = {"l1": [0.0] * n, "l2": [0.0] * n, "linf": [0.0] * n, "purity": [0.0] * n}
    for m in mats:
        rows = [m[j].double() for j in range(n)]
        for j in range(n):
            cos = []
            for i in range(n):
                if i == j:
                    continue
                c = float(rows[j] @ rows[i]) / (float(rows[j].norm()) * float(rows[i].norm()))
                cos.append(abs(c))
            out["l1"][j] += sum(cos)
            out["l2"][j] += math.sqrt(sum(c * c for c in cos))
            out["linf"][j] += max(cos)
    for j in range(n):
        out["purity"][j] = 1.0 / (out["l1"][j] / ((n - 1) * len(mats)))
    return out


def test_purity_matches_a_naive_double_loop() -> None:
    g = torch.Generator().manual_seed(3)
    img, txt = torch.randn(12, 20, generator=g), torch.randn(12, 7, generator=g)
    s = purity_scores({"img": img, "txt": txt})
    ref = naive_measures([img, txt])
    assert s.unit == "feature"
    for m in ("l1", "l2", "linf", "purity"):
        assert torch.allclose(
            s.companions[m][FEATURE_KEY], torch.tensor(ref[m], dtype=torch.float32), rtol=1e-5
        )
    assert torch.allclose(s[FEATURE_KEY], torch.tensor(ref["l1"], dtype=torch.float32), rtol=1e-5)
    one = purity_scores({"img": img}, measure="linf")
    assert torch.allclose(
        one[FEATURE_KEY], torch.tensor(naive_measures([img])["linf"], dtype=torch.float32), rtol=1e-5
    )
    # summary statistics over the off-diagonal entries
    v = img / img.norm(dim=1, keepdim=True)
    off = (v @ v.t()).abs()[~torch.eye(12, dtype=torch.bool)]
    summ = s.meta["summary"]
    assert summ["img.mean_abs_cos"] == pytest.approx(float(off.mean()), rel=1e-5)
    assert summ["img.max_abs_cos"] == pytest.approx(float(off.max()), rel=1e-5)
    assert summ["img.median_abs_cos"] == pytest.approx(float(off.median()), rel=1e-5)


def test_orthogonal_rows_are_perfectly_pure() -> None:
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)))
    s = purity_scores({"w": q[:6]})
    assert torch.allclose(s[FEATURE_KEY], torch.zeros(6), atol=1e-5)


def test_transposed_weights_with_the_orientation_flag_give_the_same_ranking() -> None:
    model, tok = tiny_clip(projection_dim=8)
    hf = score(model, tok, None, method="purity")
    w_img = model.visual_projection.weight.detach()
    w_txt = model.text_projection.weight.detach()
    transposed = StateDictModel(
        {"visual.proj": w_img.t().contiguous(), "text_projection": w_txt.t().contiguous()}, "open_clip"
    )
    oc = score(transposed, None, None, method="purity")  # orientation detected from the open_clip layout
    assert oc.meta["orientation"] == "in_out"
    assert torch.allclose(hf[FEATURE_KEY], oc[FEATURE_KEY], rtol=1e-6)
    assert torch.equal(hf[FEATURE_KEY].argsort(), oc[FEATURE_KEY].argsort())
    # explicit flag on weights stored (in, out) under HF names
    flagged = purity_scores({"a": w_img.t(), "b": w_txt.t()}, orientation="in_out")
    assert torch.equal(flagged[FEATURE_KEY].argsort(), hf[FEATURE_KEY].argsort())
    # ... and without the flag the result is a different (wrong-axis) score
    wrong = score(transposed, None, None, method="purity", orientation="out_in", projections=["image"])
    assert wrong[FEATURE_KEY].numel() == w_img.shape[1] != 8


def test_open_clip_state_dict_loads_by_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny_clip(projection_dim=8)
    sd = {
        "module.visual.proj": model.visual_projection.weight.detach().t().clone(),
        "module.text_projection": model.text_projection.weight.detach().t().clone(),
        "module.visual.conv1.weight": torch.zeros(4, 3, 2, 2),
    }
    path = tmp_path / "open_clip.pt"
    torch.save({"state_dict": sd}, path)
    loaded = load_projection_model(path)
    got = score(loaded, None, None, method="purity")
    ref = score(model, tok, None, method="purity")
    assert torch.allclose(got[FEATURE_KEY], ref[FEATURE_KEY], rtol=1e-6)
    assert got.meta["projections"] == ["visual.proj", "text_projection"]


def test_bad_checkpoints_and_projection_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from excise.models import tiny_model

    llama, tok = tiny_model("llama")
    llama.save_pretrained(tmp_path / "llama")
    with pytest.raises(ExciseError, match="'llama' model, not a CLIP-like one"):
        load_projection_model(tmp_path / "llama")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ExciseError, match="not a CLIP-like state dict"):
        load_projection_model(tmp_path / "other.pt")
    model, _ = tiny_clip()
    with pytest.raises(
        ExciseError, match=r"no projection 'visual_proj'.*image, text, .*visual_projection\.weight"
    ):
        projection_weights(model, ["visual_proj"])
    odd = StateDictModel(
        {"visual.proj": torch.randn(16, 8), "text_projection": torch.randn(16, 6)}, "open_clip"
    )
    with pytest.raises(ExciseError, match="different sizes"):
        projection_weights(odd)
    with pytest.raises(ExciseError, match="not a CLIP-like model"):
        projection_weights(llama)


def test_keep_features_zeroes_projection_rows_and_restores_exactly() -> None:
    from excise.interventions import keep_features

    model, tok = tiny_clip(projection_dim=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    sel = Selection({FEATURE_KEY: keep}, unit="feature")
    x = torch.randn(3, 3, 8, 8)
    with keep_features(model, sel):
        emb = model.get_image_features(pixel_values=x).pooler_output
        assert torch.all(emb[:, ~keep] == 0) and torch.all(emb[:, keep] != 0)
        assert torch.equal(model.text_projection.weight, before["text_projection.weight"])
    with keep_features(model, sel, sides="both"):
        assert torch.all(model.text_projection.weight[~keep] == 0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with (
        pytest.raises(ExciseError, match="unit 'feature'"),
        keep_features(model, Selection({FEATURE_KEY: keep}, unit="neuron")),
    ):
        pass


def test_random_baseline_is_deterministic_for_a_seed() -> None:
    from excise.experiments.types.feature_purity import random_masks

    a, b = random_masks(32, 8, 5, seed=7), random_masks(32, 8, 5, seed=7)
    assert torch.equal(a, b)
    assert torch.all(a.sum(1) == 8)
    assert not torch.equal(a, random_masks(32, 8, 5, seed=8))
    assert len({tuple(r.tolist()) for r in a}) > 1  # the draws differ from each other


def test_min_and_max_strategies_keep_the_lowest_and_highest_scores() -> None:
    from excise.experiments.types.feature_purity import strategy_masks

    s = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7])
    m = strategy_masks(s, 2, ("full", "min", "max"), 3, 0)
    assert m["min"][0].nonzero().flatten().tolist() == [1, 3]
    assert m["max"][0].nonzero().flatten().tolist() == [2, 4]
    assert bool(m["full"].all())


def _labelled_embeddings(n: int = 60, dim: int = 8, classes: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    labels = torch.arange(n) % classes
    img = centres[labels] + 0.9 * torch.randn(n, dim, generator=g)
    return img / img.norm(dim=1, keepdim=True), centres / centres.norm(dim=1, keepdim=True), labels


@pytest.mark.parametrize(("sides", "renormalise"), [("image", False), ("both", True)])
def test_per_feature_ablation_matches_one_at_a_time_removal(sides: str, renormalise: bool) -> None:
    from excise.experiments.types.feature_purity import ablation_importance

    img, cls, labels = _labelled_embeddings()
    got = ablation_importance(img, cls, labels, sides, renormalise)

    def top1(i: torch.Tensor, c: torch.Tensor) -> float:
        return float(((i @ c.t()).argmax(1) == labels).float().mean())

    full = top1(img, cls)
    for j in range(img.shape[1]):
        i2, c2 = img.clone(), cls.clone()
        i2[:, j] = 0
        if sides == "both":
            c2[:, j] = 0
            i2 = i2 / i2.norm(dim=1, keepdim=True)
            c2 = c2 / c2.norm(dim=1, keepdim=True)
        assert got[j].item() == pytest.approx(full - top1(i2, c2), abs=1e-6), j
    assert got.abs().sum() > 0  # the small case does move accuracy


def test_masked_embeddings_match_the_model_intervention() -> None:
    """The sweep's masking of cached embeddings gives the similarities the weight intervention gives:
    image side only: the same cosines up to each image's norm (so the same argmax and top-k); both sides
    renormalised: the same cosines (one template: masking acts on the template-averaged class embedding)."""
    from excise.evaluation.classification import class_embeddings, image_embeddings
    from excise.interventions import keep_features, mask_embeddings

    model, tok = tiny_clip(projection_dim=8)
    classes = ["cat", "dog", "bird", "fish"]
    x = torch.randn(30, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    keep = torch.tensor([1, 1, 0, 1, 0, 1, 0, 0], dtype=torch.bool)
    sel = Selection({FEATURE_KEY: keep}, unit="feature")
    for templates in (["a photo of the {}", "the {}"], ["the {}"]):
        img, cls = image_embeddings(model, x), class_embeddings(model, tok, classes, templates)
        mi, mc = mask_embeddings(img, cls, keep, sides="image")
        with keep_features(model, sel, sides="image"):
            ref = image_embeddings(model, x) @ class_embeddings(model, tok, classes, templates).t()
        assert torch.allclose((mi @ mc.t()) / mi.norm(dim=1, keepdim=True), ref, atol=1e-5)
        assert torch.equal((mi @ mc.t()).argmax(1), ref.argmax(1))
    mi, mc = mask_embeddings(img, cls, keep, sides="both", renormalise=True)
    with keep_features(model, sel, sides="both"):
        ref = image_embeddings(model, x) @ class_embeddings(model, tok, classes, ["the {}"]).t()
    assert torch.allclose(mi @ mc.t(), ref, atol=1e-5)
    assert ref.std() > 0.05  # the similarities vary: the comparison is not between constants
