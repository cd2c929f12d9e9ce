"""Feature-level interventions: keep only the selected features (dimensions) of a CLIP embedding.

Two forms with the same effect on cosine-based metrics:

- :func:`mask_embeddings` on cached normalised embeddings: zero the unselected dimensions; ``sides``
  ``"image"`` (the research code's way: image features only, not renormalised) or ``"both"``;
  ``renormalise`` rescales each masked embedding to unit length. With ``sides="image"`` renormalising
  changes no argmax and no cosine, so accuracy and silhouette are the same either way.
- :func:`keep_features` on the model: zero the unselected output features of the projection(s) (rows
  of an HF ``nn.Linear`` weight, columns of an open_clip (in, out) parameter), restored exactly on
  exit. CLIP normalises its embeddings afterwards, which is masking plus renormalising.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from excise.core import Selection, require_unit
from excise.errors import ExciseError
from excise.models.clip import CLIP_LAYOUTS, layout_of

SIDES = ("image", "both")


def feature_mask(selection: Selection) -> torch.Tensor:
    """The one boolean (features,) mask of a feature selection."""
    require_unit(selection, "feature", "keep_features")
    if len(selection) != 1:
        raise ExciseError(
            f"a feature selection holds one embedding mask, got {len(selection)}: {list(selection)}"
        )
    mask = next(iter(selection.values()))
    if mask.dim() != 1:
        raise ExciseError(
            f"a feature mask must be 1-D (one entry per feature), got shape {tuple(mask.shape)}"
        )
    return mask


def _check_sides(sides: str) -> None:
    if sides not in SIDES:
        raise ExciseError(f"unknown sides '{sides}'; choose image (image features only) or both")


def mask_embeddings(
    image: torch.Tensor,
    text: torch.Tensor,
    keep: torch.Tensor,
    sides: str = "image",
    renormalise: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings with only the ``keep`` dimensions left; ``keep`` is (D,) or (M, D) for M masks at once.

    With an (M, D) mask the results are (M, N, D): one masked copy per mask (vectorised sweeps).
    """
    _check_sides(sides)
    if keep.shape[-1] != image.shape[-1] or keep.shape[-1] != text.shape[-1]:
        raise ExciseError(
            f"feature mask has {keep.shape[-1]} entries, the embeddings {image.shape[-1]} / {text.shape[-1]}"
        )
    m = keep.to(image.dtype)
    if m.dim() == 2:
        m = m[:, None, :]

    def apply(x: torch.Tensor) -> torch.Tensor:
        y = x * m
        return y / y.norm(dim=-1, keepdim=True).clamp_min(1e-12) if renormalise else y

    img = apply(image)
    txt = apply(text) if sides == "both" else text.expand(m.shape[0], *text.shape) if m.dim() == 3 else text
    return img, txt


def _projection_params(model: nn.Module, sides: str) -> list[tuple[nn.Parameter, int]]:
    """(parameter, feature axis) of the projections the ``sides`` name."""
    layout = layout_of(model)
    spec = CLIP_LAYOUTS[layout]
    params = dict(model.named_parameters())
    axis = 0 if spec["orientation"] == "out_in" else 1
    out = []
    for side in ("image", "text") if sides == "both" else ("image",):
        if spec[side] not in params:
            raise ExciseError(f"this model has no {side} projection ({spec[side]})")
        out.append((params[spec[side]], axis))
    return out


@contextmanager
def keep_features(model: nn.Module, selection: Selection, sides: str = "image") -> Iterator[nn.Module]:
    """Zero every unselected output feature of the image (or both) projections inside the block.

    The weights are restored bit-exactly on exit. A biased projection has its bias entries zeroed too.
    """
    _check_sides(sides)
    keep = feature_mask(selection)
    targets = _projection_params(model, sides)
    mods = dict(model.named_modules())
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    for p, axis in targets:
        if p.shape[axis] != keep.numel():
            raise ExciseError(
                f"feature mask has {keep.numel()} entries, the projection {p.shape[axis]} features"
            )
        saved.append((p, p.detach().clone()))
    biases = []
    for name in ("visual_projection", "text_projection")[: len(targets)]:
        b = getattr(mods.get(name), "bias", None)
        if isinstance(b, torch.Tensor):
            biases.append(b)
            saved.append((b, b.detach().clone()))
    try:
        with torch.no_grad():
            drop = ~keep.to(targets[0][0].device)
            for p, axis in targets:
                if axis == 0:
                    p[drop] = 0
                else:
                    p[:, drop] = 0
            for b in biases:
                b[drop] = 0
        yield model
    finally:
        with torch.no_grad():
            for p, orig in saved:
                p.copy_(orig)
