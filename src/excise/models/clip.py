"""CLIP-style models: load an HF ``CLIPModel`` folder, a built-in (``digits-clip``, ``shapes-clip``) or
an open_clip state dict, and find their image / text projections in either orientation.

Layouts are data: HF stores ``visual_projection`` / ``text_projection`` as ``nn.Linear`` weights
(out, in); open_clip stores ``visual.proj`` / ``text_projection`` as parameters (in, out). Loading
only: nothing here imports the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from excise.errors import ExciseError

#: layout name -> side -> parameter name, and the orientation those parameters are stored in.
CLIP_LAYOUTS: dict[str, dict[str, str]] = {
    "hf": {"image": "visual_projection.weight", "text": "text_projection.weight", "orientation": "out_in"},
    "open_clip": {"image": "visual.proj", "text": "text_projection", "orientation": "in_out"},
}
CLIP_MODEL_TYPES = ("clip", "chinese_clip", "altclip", "siglip", "metaclip_2")
SPECIAL = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class StateDictModel(nn.Module):
    """The projection tensors of a state dict held under their own dotted names (for scoring/caching)."""

    def __init__(self, tensors: dict[str, torch.Tensor], layout: str) -> None:
        super().__init__()
        self.layout = layout
        for name, t in tensors.items():
            *path, leaf = name.split(".")
            mod: nn.Module = self
            for part in path:
                if not hasattr(mod, part):
                    mod.add_module(part, nn.Module())
                mod = getattr(mod, part)
            mod.register_parameter(leaf, nn.Parameter(t.detach().clone(), requires_grad=False))


def layout_of(model: nn.Module) -> str:
    """``hf`` for a transformers model with the HF projection names, ``open_clip`` for its names."""
    if isinstance(model, StateDictModel):
        return model.layout
    names = {n for n, _ in model.named_parameters()}
    for layout, spec in CLIP_LAYOUTS.items():
        if spec["image"] in names or spec["text"] in names:
            return layout
    raise ExciseError(
        f"{type(model).__name__} is not a CLIP-like model: it has neither HF projections "
        "(visual_projection, text_projection) nor open_clip ones (visual.proj, text_projection)"
    )


def available_projections(model: nn.Module) -> list[str]:
    """Names a projection may be given by: the sides (image, text) and the 2-D top-level parameters."""
    out = []
    layout = layout_of(model)
    params = dict(model.named_parameters())
    for side in ("image", "text"):
        if CLIP_LAYOUTS[layout][side] in params:
            out.append(side)
    out += [n for n, p in params.items() if p.dim() == 2 and "proj" in n and ".layers." not in n]
    out += [n for n, p in params.items() if p.dim() == 2 and "proj" in n and ".layers." in n][:4]
    return list(dict.fromkeys(out))


def projection_weights(
    model: nn.Module, projections: list[str] | None = None, orientation: str = "auto"
) -> tuple[dict[str, torch.Tensor], str]:
    """The named projection weights as stored, and their orientation (``auto``: from the layout).

    ``projections``: side names (``image``, ``text``) or parameter names (``None``: both sides).
    """
    layout = layout_of(model)
    spec = CLIP_LAYOUTS[layout]
    params = dict(model.named_parameters())
    wanted = projections or [s for s in ("image", "text") if spec[s] in params]
    out: dict[str, torch.Tensor] = {}
    for p in wanted:
        name = spec.get(p, p) if p in ("image", "text") else p
        if name not in params and f"{name}.weight" in params:
            name = f"{name}.weight"
        if name not in params or params[name].dim() != 2:
            raise ExciseError(
                f"no projection '{p}' in this model; projections there: {', '.join(available_projections(model))}"
            )
        out[name] = params[name].detach()
    orient = spec["orientation"] if orientation == "auto" else orientation
    if orient not in ("out_in", "in_out"):
        raise ExciseError(
            f"unknown orientation '{orientation}'; choose auto, out_in (HF) or in_out (open_clip)"
        )
    sizes = {n: (w.shape[0] if orient == "out_in" else w.shape[1]) for n, w in out.items()}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        raise ExciseError(
            f"the projections write embeddings of different sizes ({desc}; orientation {orient}); "
            "a pair must project into the same space (check --orientation or the projection names)"
        )
    return out, orient


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise ExciseError(f"cannot read the state dict {path}: {err}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ExciseError(
            f"{path} is not a state dict of tensors (save one with torch.save(model.state_dict()))"
        )
    return {k.removeprefix("module."): v for k, v in sd.items()}


def check_clip_source(name_or_path: str | Path) -> str:
    """Check, before loading any weights, that a name or path is CLIP-like; returns its kind.

    Kinds: ``builtin``, ``hf`` (a folder with a CLIP config.json), ``open_clip`` (a state dict file).
    """
    from excise.models.load import BUILTIN_MODELS

    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        if not name.endswith("-clip"):
            clips = ", ".join(n for n in BUILTIN_MODELS if n.endswith("-clip"))
            raise ExciseError(f"'{name}' is not a CLIP-style model; built-in CLIP models: {clips}")
        return "builtin"
    path = Path(name).expanduser()
    if not path.exists():
        clips = ", ".join(n for n in BUILTIN_MODELS if n.endswith("-clip"))
        raise ExciseError(
            f"CLIP model not found: {name} (pass an HF CLIP folder, an open_clip state dict file, "
            f"or a built-in name: {clips})"
        )
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.is_file():
            raise ExciseError(
                f"{path} is not a model folder (no config.json); pass a CLIP folder written by save_pretrained"
            )
        try:
            mtype = json.loads(cfg.read_text()).get("model_type")
        except ValueError as err:
            raise ExciseError(f"cannot read {cfg}: {err}") from None
        if mtype not in CLIP_MODEL_TYPES:
            raise ExciseError(
                f"{path} holds a '{mtype}' model, not a CLIP-like one (model types: {', '.join(CLIP_MODEL_TYPES)})"
            )
        return "hf"
    if path.suffix not in STATE_DICT_SUFFIXES:
        raise ExciseError(
            f"{path} is neither a model folder nor a state dict file ({', '.join(STATE_DICT_SUFFIXES)})"
        )
    return "open_clip"


def load_projection_model(name_or_path: str | Path) -> nn.Module:
    """A model whose projections can be scored: an HF CLIP / built-in model, or an open_clip state dict."""
    kind = check_clip_source(name_or_path)
    if kind != "open_clip":
        return load_clip(name_or_path)[0]
    path = Path(str(name_or_path)).expanduser()
    sd = _read_state_dict(path)
    spec = CLIP_LAYOUTS["open_clip"]
    if spec["image"] not in sd and spec["text"] not in sd:
        hf = CLIP_LAYOUTS["hf"]
        if hf["image"] in sd or hf["text"] in sd:
            keep = {k: sd[k] for k in (hf["image"], hf["text"]) if k in sd}
            return StateDictModel(keep, "hf")
        raise ExciseError(
            f"{path} is not a CLIP-like state dict: it has neither open_clip projections "
            "(visual.proj, text_projection) nor HF ones (visual_projection.weight, text_projection.weight)"
        )
    keep = {k: v for k, v in sd.items() if v.dim() == 2 and "proj" in k and ".resblocks." not in k}
    return StateDictModel(keep, "open_clip")


def load_clip(name_or_path: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """``(CLIPModel, tokenizer)`` in eval mode from a built-in name or an HF CLIP folder."""
    from excise.models.load import _load_builtin

    kind = check_clip_source(name_or_path)
    if kind == "builtin":
        model, tok = _load_builtin(str(name_or_path))
        return model.to(device).eval(), tok
    if kind == "open_clip":
        raise ExciseError(
            f"{name_or_path} is an open_clip state dict: its projections can be scored "
            "(excise.scoring.score(..., method='purity')), but evaluating it needs an HF CLIP folder"
        )
    from transformers import AutoModel, AutoTokenizer

    path = Path(str(name_or_path)).expanduser()
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ExciseError(f"cannot load the CLIP model in {path}: {err}") from None
    return model.to(device).eval(), tok


def build_tokenizer(words: list[str], max_length: int) -> Any:
    """A word-level ``PreTrainedTokenizerFast``: lower-cased whitespace words, [BOS] text [EOS]."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="[BOS]",
        eos_token="[EOS]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        model_max_length=max_length,
        padding_side="right",
    )


def tiny_clip(
    words: list[str] | None = None,
    projection_dim: int = 8,
    image_size: int = 8,
    channels: int = 3,
    hidden: int = 16,
    seed: int = 0,
) -> tuple[Any, Any]:
    """A tiny random HF ``CLIPModel`` and its word-level tokenizer, built from a config (for tests)."""
    from transformers import CLIPConfig, CLIPModel

    vocab = words or ["a", "photo", "of", "the", "cat", "dog", "bird", "fish", "frog"]
    tok = build_tokenizer(vocab, max_length=16)
    common = dict(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1, num_attention_heads=2
    )
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            max_position_embeddings=16,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **common,
        ),
        vision_config=dict(
            image_size=image_size, patch_size=image_size // 2, num_channels=channels, **common
        ),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(cfg).eval(), tok
