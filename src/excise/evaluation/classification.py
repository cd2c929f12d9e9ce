"""Zero-shot classification of a CLIP-style model, and the silhouette score of image features.

Class embeddings are template-averaged (Radford et al. 2021): each template filled with the class
name is embedded and normalised, the mean over templates is normalised again. Images are embedded
once and normalised; a prediction is the class of highest cosine. Feature masks (see
:mod:`excise.interventions.features`) act on these cached embeddings, so a sweep over kept features
runs no model pass per setting.
"""

from __future__ import annotations

from typing import Any

import torch

from excise.data.images import ImageSet
from excise.errors import ExciseError


def _pooled(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def image_embeddings(model: Any, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Normalised image embeddings (N, D), float32 on CPU."""
    dev = next(model.parameters()).device
    out = [
        _pooled(model.get_image_features(pixel_values=images[i : i + batch_size].to(dev)))
        for i in range(0, len(images), batch_size)
    ]
    return _normalise(torch.cat(out).float().cpu())


@torch.no_grad()
def text_embeddings(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised text embeddings (N, D), float32 on CPU."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
        out.append(
            _pooled(
                model.get_text_features(
                    input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev)
                )
            )
        )
    return _normalise(torch.cat(out).float().cpu())


def class_embeddings(model: Any, tokenizer: Any, classes: list[str], templates: list[str]) -> torch.Tensor:
    """Template-averaged class embeddings (C, D), normalised: mean over normalised prompts, renormalised."""
    prompts = [t.format(c) for c in classes for t in templates]
    emb = text_embeddings(model, tokenizer, prompts).view(len(classes), len(templates), -1)
    return _normalise(emb.mean(1))


def balanced_accuracy(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """Mean over the classes present in ``labels`` of the per-class recall."""
    recalls = [
        float((pred[labels == c] == c).float().mean()) for c in range(n_classes) if (labels == c).any()
    ]
    return sum(recalls) / len(recalls)


def zero_shot_metrics(
    image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor, top_k: int = 5
) -> dict[str, float]:
    """top-1, top-k (k capped at the class count) and balanced accuracy, as fractions."""
    logits = image_emb @ class_emb.t()
    pred = logits.argmax(1)
    k = min(top_k, class_emb.shape[0])
    topk = logits.topk(k, dim=1).indices
    return {
        "top1": float((pred == labels).float().mean()),
        f"top{top_k}": float((topk == labels[:, None]).any(1).float().mean()),
        "balanced": balanced_accuracy(pred, labels, class_emb.shape[0]),
    }


def evaluate_zero_shot(model: Any, tokenizer: Any, data: ImageSet) -> dict[str, float]:
    """Zero-shot top-1 / top-5 / balanced accuracy of ``model`` on ``data`` (no masking)."""
    img = image_embeddings(model, data.images)
    cls = class_embeddings(model, tokenizer, data.classes, data.templates)
    return zero_shot_metrics(img, cls, data.labels)


def silhouette_cosine(
    x: torch.Tensor, labels: torch.Tensor, sample_size: int | None = 2000, seed: int = 0
) -> float:
    """Mean silhouette coefficient with cosine distance (1 - cos), as ``sklearn.metrics.silhouette_score``.

    With more than ``sample_size`` points a seeded random subset of that size is scored (None: all).
    s(i) = (b - a) / max(a, b), a = mean distance to its own cluster (others than i), b = the lowest
    mean distance to another cluster; 0 for points alone in their cluster.
    """
    n = x.shape[0]
    if sample_size is not None and n > sample_size:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:sample_size]
        x, labels = x[idx], labels[idx]
    classes, lab = torch.unique(labels, return_inverse=True)
    if not 2 <= len(classes) <= x.shape[0] - 1:
        raise ExciseError(f"the silhouette needs 2..n-1 classes among the points, got {len(classes)}")
    v = x.double()
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    d = (1.0 - v @ v.t()).clamp_min(0.0)
    d.fill_diagonal_(0.0)
    onehot = torch.nn.functional.one_hot(lab, len(classes)).double()  # (n, C)
    sums = d @ onehot  # distance sum to each cluster
    counts = onehot.sum(0)
    own = counts[lab]
    a = sums.gather(1, lab[:, None]).squeeze(1) / (own - 1).clamp_min(1)
    mean_other = sums / counts[None, :]
    mean_other.scatter_(1, lab[:, None], float("inf"))
    b = mean_other.min(1).values
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-300)
    s = torch.where(own > 1, s, torch.zeros_like(s))
    return float(s.mean())
