"""Built-in CLIP models trained offline on CPU: ``digits-clip`` and ``shapes-clip``.

A tiny HF ``CLIPModel`` (from a small ``CLIPConfig``) with a word-level tokenizer built from the
training captions' vocabulary (words never seen in training map to ``[UNK]``), trained
contrastively. Because many captions in a batch are true of several images (ten digit classes),
the loss is CLIP's symmetric cross-entropy with every true (image, caption) pair as a positive
(soft targets), not only the diagonal.

- ``digits-clip``: scikit-learn's bundled 8x8 digits, a stratified 70/30 split; captions from
  :data:`DIGIT_TRAIN_TEMPLATES`; zero-shot test on the held-out 30% with the unseen
  :data:`DIGIT_TEST_TEMPLATES`.
- ``shapes-clip``: :mod:`excise.zoo.shapes`; trained on 12 of 16 (shape, colour) combinations; the
  zero-shot test classifies images of the 4 held-out combinations among all 16 classes.

Each model is cached in ``cache_dir()/clip/<name>-<recipe hash>`` (written to a temporary folder,
renamed when complete), with ``clip.json``: the recipe, training time, per-epoch loss, zero-shot
accuracy and purity statistics of the projections, and ``purity_training.png`` plotting them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from excise.config import BaseConfig
from excise.data.images import ImageSet
from excise.errors import ExciseError
from excise.models.clip import build_tokenizer
from excise.utils import atomic_write_json, cache_dir, stable_hash

CLIP_VERSION = 1  # bump when training changes the result in a way the recipe does not capture
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TRAIN_TEMPLATES = (
    "a photo of the digit {}",
    "the number {}",
    "a handwritten {}",
    "digit {}",
    "a scan of a handwritten number {}",
    "this digit is a {}",
    "a small blurry {}",
    "{}",
)
DIGIT_TEST_TEMPLATES = ("an image showing the number {}", "a drawing of a {}", "handwritten digit {}")


class ClipRecipe(BaseConfig):
    """How a built-in CLIP is built and trained (every field enters the cache key)."""

    name: str
    data: Literal["digits", "shapes"]
    hidden: int = Field(64, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    intermediate: int = Field(128, ge=8)
    projection_dim: int = Field(32, ge=2)
    patch_size: int = Field(2, ge=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    per_combo: int = Field(200, ge=1, description="shapes: training images per seen combination")
    test_per_combo: int = Field(100, ge=1, description="shapes: test images per held-out combination")
    seed: int = 0

    def key(self) -> str:
        """Cache key: the recipe, the code version and the data (templates, shape constants)."""
        blob = {"recipe": self.to_dict(), "version": CLIP_VERSION, "data": _data_signature(self.data)}
        return f"{self.name}-{stable_hash(blob, 12)}"


def _data_signature(data: str) -> dict[str, Any]:
    """What of the training data is code, not recipe: the templates and the shapes generator's tables."""
    if data == "digits":
        return {"train": DIGIT_TRAIN_TEMPLATES, "test": DIGIT_TEST_TEMPLATES, "names": DIGIT_NAMES}
    from excise.zoo import shapes as S

    return {
        "train": S.TRAIN_TEMPLATES,
        "test": S.TEST_TEMPLATES,
        "tables": [S.SHAPES, S.COLOURS, S.SIZES, S.POSITIONS, S.WHERE, S.HELD_OUT, S.IMAGE_SIZE],
    }


RECIPES: dict[str, ClipRecipe] = {
    "digits-clip": ClipRecipe(name="digits-clip", data="digits", patch_size=2),
    "shapes-clip": ClipRecipe(name="shapes-clip", data="shapes", patch_size=4, epochs=30, lr=3e-3),
}


def get_recipe(recipe: str | ClipRecipe) -> ClipRecipe:
    if isinstance(recipe, ClipRecipe):
        return recipe
    if recipe not in RECIPES:
        raise ExciseError(f"unknown CLIP recipe '{recipe}'; built-in: {', '.join(RECIPES)}")
    return RECIPES[recipe]


# ------------------------------------------------------------------------------------------- data


class TrainData:
    """Training images, the unique captions, the caption of each (image, template), and attributes.

    ``truth(img_idx, tpl_idx)`` gives M[i, j] = "caption j of the batch is true of image i": the
    caption of image a from template t is true of image b when they agree on every attribute t names.
    """

    def __init__(
        self,
        images: torch.Tensor,
        captions: list[str],
        caption_of: torch.Tensor,
        attrs: torch.Tensor,
        named: torch.Tensor,
    ) -> None:
        self.images, self.captions, self.caption_of, self.attrs, self.named = (
            images,
            captions,
            caption_of,
            attrs,
            named,
        )

    def truth(self, idx: torch.Tensor, tpl: torch.Tensor) -> torch.Tensor:
        a = self.attrs[idx]  # (B, K)
        same = a[None, :, :] == a[:, None, :]  # [i, j, k]: image i and caption-image j agree on k
        return (same | ~self.named[tpl][None, :, :]).all(-1)


def _digits_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test[idx[: int(round(0.3 * len(idx)))]] = True
    return x[~test][:, None], y[~test], x[test][:, None], y[test]


def _digit_train(seed: int) -> TrainData:
    x, y, _, _ = _digits_split(seed)
    captions = [t.format(n) for n in DIGIT_NAMES for t in DIGIT_TRAIN_TEMPLATES]
    tpl = len(DIGIT_TRAIN_TEMPLATES)
    caption_of = torch.tensor(y)[:, None] * tpl + torch.arange(tpl)[None, :]
    attrs = torch.tensor(y)[:, None]
    named = torch.ones(tpl, 1, dtype=torch.bool)
    return TrainData(torch.from_numpy(x), captions, caption_of, attrs, named)


def _shape_train(rec: ClipRecipe) -> TrainData:
    from excise.zoo import shapes as S

    rng = np.random.default_rng(rec.seed)
    items = S.sample_items(S.seen_combinations(), rec.per_combo, rng)
    images = S.draw(items, rng)
    index: dict[str, int] = {}
    caption_of = torch.empty(len(items), len(S.TRAIN_TEMPLATES), dtype=torch.long)
    for i, it in enumerate(items):
        for t, tpl in enumerate(S.TRAIN_TEMPLATES):
            caption_of[i, t] = index.setdefault(S.caption(it, tpl), len(index))
    lookup = [list(S.SHAPES), list(S.COLOURS), list(S.SIZES), list(S.POSITIONS)]
    attrs = torch.tensor(
        [
            [lookup[k].index(v) for k, v in enumerate((it.shape, it.colour, it.size, it.position))]
            for it in items
        ]
    )
    named = torch.tensor(
        [[f in t for f in ("{shape}", "{colour}", "{size}", "{where}")] for t in S.TRAIN_TEMPLATES]
    )
    return TrainData(images, list(index), caption_of, attrs, named)


def eval_set(data: str, seed: int = 0) -> ImageSet:
    """The zero-shot test set of a built-in data set: ``digits`` or ``shapes`` (held-out combinations)."""
    if data == "digits":
        _, _, x, y = _digits_split(seed)
        return ImageSet(
            "digits", torch.from_numpy(x), torch.from_numpy(y), list(DIGIT_NAMES), list(DIGIT_TEST_TEMPLATES)
        )
    if data == "shapes":
        from excise.zoo import shapes as S

        rng = np.random.default_rng(10_000 + seed)
        items = S.sample_items(list(S.HELD_OUT), RECIPES["shapes-clip"].test_per_combo, rng)
        labels = torch.tensor([S.class_index(it.shape, it.colour) for it in items])
        return ImageSet("shapes", S.draw(items, rng), labels, S.class_names(), list(S.TEST_TEMPLATES))
    if data == "shapes-seen":  # new images of the training combinations (an in-distribution check)
        from excise.zoo import shapes as S

        rng = np.random.default_rng(20_000 + seed)
        items = S.sample_items(S.seen_combinations(), 30, rng)
        labels = torch.tensor([S.class_index(it.shape, it.colour) for it in items])
        return ImageSet("shapes-seen", S.draw(items, rng), labels, S.class_names(), list(S.TEST_TEMPLATES))
    raise ExciseError(
        f"unknown built-in image set '{data}'; choose digits or shapes (or pass an image folder)"
    )


BUILTIN_SETS = ("digits", "shapes")


# -------------------------------------------------------------------------------- model, tokenizer


def build_model(rec: ClipRecipe, vocab_size: int, max_length: int, image_size: int, channels: int) -> Any:
    from transformers import CLIPConfig, CLIPModel

    common = dict(
        hidden_size=rec.hidden,
        intermediate_size=rec.intermediate,
        num_hidden_layers=rec.layers,
        num_attention_heads=rec.heads,
    )
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            max_position_embeddings=max_length,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **common,
        ),
        vision_config=dict(image_size=image_size, patch_size=rec.patch_size, num_channels=channels, **common),
        projection_dim=rec.projection_dim,
    )
    torch.manual_seed(rec.seed)
    return CLIPModel(cfg)


def _pooled(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def projection_stats(model: Any) -> dict[str, float]:
    """Purity statistics of the image and text projections (mean/max/median |cos|, mean score)."""
    from excise.scoring.purity import cosine_summary, feature_rows, purity_measures

    img = feature_rows(model.visual_projection.weight, "out_in")
    txt = feature_rows(model.text_projection.weight, "out_in")
    out = {f"image.{k}": v for k, v in cosine_summary([img]).items()}
    out.update({f"text.{k}": v for k, v in cosine_summary([txt]).items()})
    m = purity_measures([img, txt])
    out["score_mean"] = float(m["l1"].mean())
    out["purity_mean"] = float(m["purity"].mean())
    return out


# ----------------------------------------------------------------------------------------- training


def train_clip(recipe: str | ClipRecipe, out: str | Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Train a built-in CLIP (seeded); returns ``(model, tokenizer, log)`` and saves into ``out``."""
    from excise.evaluation.classification import evaluate_zero_shot

    rec = get_recipe(recipe)
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(rec.seed)
    data = _digit_train(rec.seed) if rec.data == "digits" else _shape_train(rec)
    test = eval_set(rec.data, rec.seed)
    words = [w for c in data.captions for w in c.lower().split()]
    enc_lens = [len(c.split()) for c in data.captions]
    max_length = max(enc_lens) + 2 + 4  # [BOS], [EOS] and room for longer prompts
    tok = build_tokenizer(words, max_length)
    enc = tok(
        data.captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    channels, size = int(data.images.shape[1]), int(data.images.shape[-1])
    model = build_model(rec, len(tok), max_length, size, channels)
    opt = torch.optim.AdamW(model.parameters(), lr=rec.lr, weight_decay=rec.weight_decay)
    n = len(data.images)
    steps_per_epoch = max(1, n // rec.batch_size)
    total = rec.epochs * steps_per_epoch
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / total)))
    )
    gen = torch.Generator().manual_seed(rec.seed)
    n_tpl = data.caption_of.shape[1]
    log: dict[str, Any] = {"recipe": rec.to_dict(), "key": rec.key(), "epochs": []}
    for epoch in range(rec.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = perm[s * rec.batch_size : (s + 1) * rec.batch_size]
            tpl = torch.randint(0, n_tpl, (len(idx),), generator=gen)
            cap = data.caption_of[idx, tpl]
            truth = data.truth(idx, tpl).float()  # [image i, caption j]
            img = _pooled(model.get_image_features(pixel_values=data.images[idx]))
            txt = _pooled(model.get_text_features(input_ids=ids[cap], attention_mask=mask[cap]))
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
            t_i = truth / truth.sum(1, keepdim=True)
            t_t = truth.t() / truth.t().sum(1, keepdim=True)
            loss = 0.5 * (
                -(t_i * logits.log_softmax(1)).sum(1).mean() - (t_t * logits.t().log_softmax(1)).sum(1).mean()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            acc = evaluate_zero_shot(model, tok, test)
        entry = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "top1": acc["top1"],
            **projection_stats(model),
        }
        log["epochs"].append(entry)
    model.eval()
    log["train_seconds"] = time.perf_counter() - t0
    log["train_cpu_seconds"] = time.process_time() - c0  # CPU time of this process (all its threads)
    log["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    log["torch_threads"] = torch.get_num_threads()
    with torch.no_grad():
        log["zero_shot"] = evaluate_zero_shot(model, tok, test)
    if rec.data == "shapes":
        with torch.no_grad():
            log["zero_shot_seen_combinations"] = evaluate_zero_shot(
                model, tok, eval_set("shapes-seen", rec.seed)
            )
    log["test_set"] = {
        "name": test.name,
        "size": len(test),
        "classes": len(test.classes),
        "templates": test.templates,
    }
    if out is not None:
        out = Path(out)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        atomic_write_json(out / "clip.json", log)
        plot_training_purity(log, out / "purity_training.png")
    return model, tok, log


def plot_training_purity(log: dict[str, Any], path: Path) -> Path:
    """Mean / median / max |cos| of both projections and zero-shot top-1 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [e["epoch"] for e in log["epochs"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for side, ls in (("image", "-"), ("text", "--")):
        for stat in ("mean", "median", "max"):
            a1.plot(
                ep, [e[f"{side}.{stat}_abs_cos"] for e in log["epochs"]], ls, label=f"{side} {stat} |cos|"
            )
    a1.set_xlabel("epoch")
    a1.set_ylabel("off-diagonal |cos| of projection rows")
    a1.legend(fontsize=7)
    a2.plot(ep, [e["top1"] for e in log["epochs"]], "k-")
    a2.set_xlabel("epoch")
    a2.set_ylabel("zero-shot top-1 (held-out)")
    fig.suptitle(f"{log['recipe']['name']}: projection purity during training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def clip_dir(recipe: str | ClipRecipe) -> Path:
    return cache_dir() / "clip" / get_recipe(recipe).key()


def ensure_clip(recipe: str | ClipRecipe, retrain: bool = False) -> Path:
    """Train into the cache unless there; returns the folder (temp folder renamed when complete)."""
    rec = get_recipe(recipe)
    final = clip_dir(rec)
    if (final / "clip.json").is_file() and not retrain:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        train_clip(rec, out=tmp)
        if final.exists():
            if (final / "clip.json").is_file() and not retrain:
                return final  # another process finished first
            trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
            os.rename(final, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_clip_recipe(recipe: str | ClipRecipe) -> tuple[Any, Any]:
    """``(CLIPModel, tokenizer)`` of a built-in recipe, training it first when not cached."""
    from transformers import CLIPModel, PreTrainedTokenizerFast

    path = ensure_clip(recipe)
    try:
        model = CLIPModel.from_pretrained(path)
        tok = PreTrainedTokenizerFast.from_pretrained(path)
    except Exception:  # noqa: BLE001 - a corrupt cache entry is retrained once
        path = ensure_clip(recipe, retrain=True)
        model = CLIPModel.from_pretrained(path)
        tok = PreTrainedTokenizerFast.from_pretrained(path)
    return model.eval(), tok


def load_digits_clip() -> tuple[Any, Any]:
    return load_clip_recipe("digits-clip")


def load_shapes_clip() -> tuple[Any, Any]:
    return load_clip_recipe("shapes-clip")


def training_log(recipe: str | ClipRecipe) -> dict[str, Any] | None:
    import json

    p = clip_dir(recipe) / "clip.json"
    return json.loads(p.read_text()) if p.is_file() else None
