"""Labelled image sets for zero-shot classification: a tensor of images, labels, class names and the
caption templates that turn a class name into a prompt; and a loader for an image folder with one
sub-folder per class (``root/<class>/*.png``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from excise.errors import ExciseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_TEMPLATES = ("a photo of a {}",)


@dataclass
class ImageSet:
    """Images (N, C, H, W) ready for the model, integer labels (N,), class names, prompt templates."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ExciseError(
                f"image set '{self.name}': images must be (N, C, H, W), got {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ExciseError(
                f"image set '{self.name}': {self.images.shape[0]} images but {self.labels.numel()} labels"
            )
        if len(self.images) == 0:
            raise ExciseError(f"image set '{self.name}' is empty")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ExciseError(f"image set '{self.name}': every template needs a '{{}}' for the class name")
        if int(self.labels.max()) >= len(self.classes) or int(self.labels.min()) < 0:
            raise ExciseError(f"image set '{self.name}': labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return int(self.images.shape[0])


def class_folders(root: str | Path) -> list[Path]:
    """The class sub-folders of an image folder (sorted), or an ExciseError saying what is wrong."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ExciseError(
            f"image folder not found: {root} (pass a folder with one sub-folder of images per class)"
        )
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:3]
        extra = f" (it holds images directly, e.g. {', '.join(loose)})" if loose else ""
        raise ExciseError(
            f"image folder {root} has no class sub-folders{extra}; arrange it as {root}/<class name>/<image files>"
        )
    empty = [p.name for p in subs if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())]
    if empty:
        raise ExciseError(f"class folders without images in {root}: {', '.join(empty[:5])}")
    return subs


def load_image_folder(
    root: str | Path,
    image_size: int,
    channels: int = 3,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    templates: list[str] | None = None,
) -> ImageSet:
    """Read ``root/<class>/*`` resized to ``image_size`` (square), scaled to [0, 1], then (x - mean) / std."""
    from PIL import Image

    subs = class_folders(root)
    images, labels = [], []
    for label, sub in enumerate(subs):
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                img = Image.open(f).convert("L" if channels == 1 else "RGB").resize((image_size, image_size))
            except OSError as err:
                raise ExciseError(f"cannot read image {f}: {err}") from None
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).float() / 255.0
            images.append(t.view(image_size, image_size, channels).permute(2, 0, 1))
            labels.append(label)
    x = torch.stack(images)
    m = torch.tensor(mean if mean is not None else [0.5] * channels).view(1, -1, 1, 1)
    s = torch.tensor(std if std is not None else [0.5] * channels).view(1, -1, 1, 1)
    classes = [p.name.replace("_", " ") for p in subs]
    return ImageSet(
        Path(root).name, (x - m) / s, torch.tensor(labels), classes, list(templates or DEFAULT_TEMPLATES)
    )
