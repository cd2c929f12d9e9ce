"""Load a causal LM: built-in names, local folders, or cached hub ids (the hub is never contacted)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from excise.errors import ExciseError
from excise.models.tiny import FAMILIES

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "auto": "auto",
}

# Built-in models: name -> "module:function" returning (model, tokenizer); loaded lazily.
BUILTIN_MODELS: dict[str, str] = {
    "organism": "excise.zoo.organism:load_organism",
    "organism-base": "excise.zoo.organism:load_organism_base",
    "smollm2-135m-instruct": "excise.zoo.smollm2:load_smollm2",
    "smollm2-safety": "excise.zoo.smollm2:load_smollm2_safety",
    # CLIP recipes live in the zoo (above the pipeline); the name is only resolved when loaded.
    "digits-clip": "excise.zoo.clip:load_digits_clip",
    "shapes-clip": "excise.zoo.clip:load_shapes_clip",
}
for _fam in FAMILIES:
    BUILTIN_MODELS[f"tiny-{_fam.replace('_', '-')}"] = f"excise.models.tiny:tiny_model_{_fam}"


def resolve_dtype(dtype: str | torch.dtype) -> Any:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ExciseError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device: str) -> str:
    """The device string, checked (``auto`` kept: it means accelerate's device map here)."""
    from excise.devices import check_device

    return check_device(device)


def _load_builtin(name: str) -> tuple[Any, Any]:
    mod_name, fn_name = BUILTIN_MODELS[name].split(":")
    mod = importlib.import_module(mod_name)
    return getattr(mod, fn_name)()


def _place(model: Any, dtype: Any, device: str) -> Any:
    if dtype != "auto":
        model = model.to(dtype)
    if device not in ("cpu", "auto"):
        model = model.to(device)
    return model


def load_model(
    name_or_path: str | Path, dtype: str | torch.dtype = "float32", device: str = "cpu"
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` in eval mode.

    ``name_or_path`` is a built-in name (``organism``, ``smollm2-135m-instruct``, ``tiny-llama`` ...),
    a local folder written by ``save_pretrained``, or a hub id already in the local cache.
    ``device="auto"`` spreads a large model over the available GPUs with accelerate.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(name_or_path)
    td = resolve_dtype(dtype)
    device = resolve_device(device)
    if name in BUILTIN_MODELS:
        model, tok = _load_builtin(name)
        return _place(model, td, device).eval(), tok
    path = Path(name).expanduser()
    kwargs: dict[str, Any] = {"dtype": td}
    if device == "auto":
        kwargs["device_map"] = "auto"
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ExciseError(
                f"{path} is not a model folder (no config.json); pass a folder written by save_pretrained"
            )
        src: str = str(path)
        local_only = True
    else:
        looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
        if looks_like_path:
            raise ExciseError(
                f"model path not found: {name} (check the path, or use a built-in name: "
                + ", ".join(BUILTIN_MODELS)
                + ")"
            )
        src, local_only = name, True
    try:
        model = AutoModelForCausalLM.from_pretrained(src, local_files_only=local_only, **kwargs)
        tok = AutoTokenizer.from_pretrained(src, local_files_only=local_only)
    except OSError as err:
        if path.exists():
            raise ExciseError(f"cannot load the model in {path}: {err}") from None
        raise ExciseError(
            f"model '{name}' is not a local folder, not a built-in name, and not in the local Hugging Face "
            "cache; the hub is not reachable from here: download it on a machine with access "
            "(e.g. `huggingface-cli download ID --local-dir DIR`) and pass the folder path instead"
        ) from None
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    model = _place(model, td, device if device != "auto" else "cpu") if device != "auto" else model
    return model.eval(), tok


def save_model(model: Any, tokenizer: Any, out: str | Path) -> Path:
    """``save_pretrained`` model and tokenizer into a new folder, atomically (temp folder, rename)."""
    import shutil
    import tempfile

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExciseError(
            f"output folder {out} already exists and is not empty; choose a new path or delete it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        from excise.utils import honour_umask

        honour_umask(tmp, directory=True)  # mkdtemp makes 0700; a saved model is shared like any folder
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
