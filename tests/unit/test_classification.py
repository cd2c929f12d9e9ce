"""Zero-shot classification and silhouette against independent computations; image folders."""

from __future__ import annotations

import pytest
import torch

from excise.errors import ExciseError
from excise.evaluation.classification import (
    class_embeddings,
    image_embeddings,
    silhouette_cosine,
    zero_shot_metrics,
)
from excise.models.clip import tiny_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_zero_shot_metrics_match_a_manual_computation() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(50, 6, generator=g), dim=1)
    cls = torch.nn.functional.normalize(torch.randn(7, 6, generator=g), dim=1)
    labels = torch.randint(0, 7, (50,), generator=g)
    got = zero_shot_metrics(img, cls, labels)
    hits1 = hits5 = 0
    per_class: dict[int, list[int]] = {}
    for i in range(50):
        sims = [float(img[i] @ cls[c]) for c in range(7)]
        order = sorted(range(7), key=lambda c: -sims[c])
        hits1 += order[0] == int(labels[i])
        hits5 += int(labels[i]) in order[:5]
        per_class.setdefault(int(labels[i]), []).append(int(order[0] == int(labels[i])))
    assert got["top1"] == pytest.approx(hits1 / 50)
    assert got["top5"] == pytest.approx(hits5 / 50)
    recalls = [sum(v) / len(v) for v in per_class.values()]
    assert got["balanced"] == pytest.approx(sum(recalls) / len(recalls))
    assert got["top5"] > got["top1"]  # a real difference in this case


def test_class_embeddings_average_normalised_prompts() -> None:
    model, tok = tiny_clip()
    classes, templates = ["cat", "dog"], ["a photo of the {}", "the {}", "{}"]
    got = class_embeddings(model, tok, classes, templates)
    with torch.no_grad():
        for c, name in enumerate(classes):
            vecs = []
            for t in templates:
                enc = tok([t.format(name)], return_tensors="pt")
                e = model.get_text_features(**enc).pooler_output[0]
                vecs.append(e / e.norm())
            m = torch.stack(vecs).mean(0)
            assert torch.allclose(got[c], m / m.norm(), atol=1e-5)
    x = torch.randn(5, 3, 8, 8)
    emb = image_embeddings(model, x, batch_size=2)
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=x).pooler_output
    assert torch.allclose(emb, ref / ref.norm(dim=1, keepdim=True), atol=1e-5)


def test_silhouette_matches_scikit_learn() -> None:
    from sklearn.metrics import silhouette_score

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(90) % 3
    x = torch.randn(3, 5, generator=g)[labels] + 0.8 * torch.randn(90, 5, generator=g)
    labels[0] = 2  # uneven clusters
    ref = silhouette_score(x.numpy(), labels.numpy(), metric="cosine")
    assert silhouette_cosine(x, labels, sample_size=None) == pytest.approx(ref, abs=1e-6)
    # the subsample is a seeded random subset scored the same way
    idx = torch.randperm(90, generator=torch.Generator().manual_seed(4))[:40]
    sub = silhouette_score(x[idx].numpy(), labels[idx].numpy(), metric="cosine")
    assert silhouette_cosine(x, labels, sample_size=40, seed=4) == pytest.approx(sub, abs=1e-6)
    with pytest.raises(ExciseError, match="2..n-1 classes"):
        silhouette_cosine(x, torch.zeros(90, dtype=torch.long), sample_size=None)


def test_image_folder_loads_and_rejects_a_folder_without_class_subfolders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from excise.data.images import load_image_folder

    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (10, 10), (255, 0, 0)).save(flat / "a.png")
    with pytest.raises(ExciseError, match="no class sub-folders.*a.png"):
        load_image_folder(flat, 8)
    root = tmp_path / "set"
    for name, colour in (("red_thing", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 12), colour).save(root / name / f"{i}.png")
    data = load_image_folder(root, 8)
    assert data.classes == ["blue", "red thing"]
    assert data.images.shape == (4, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 1, 1]
    # (1 - 0.5) / 0.5 = 1 in the red channel of the red images, -1 elsewhere
    assert torch.allclose(data.images[2, 0], torch.ones(8, 8)) and torch.allclose(
        data.images[2, 2], -torch.ones(8, 8)
    )
