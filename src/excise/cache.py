"""Content-addressed cache of computed artifacts (scores, trained models).

The key is a hash of everything that determines the result: method and its parameters,
model fingerprint, data fingerprint and the library version. A second identical request
finds the entry and computes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from excise.core import Scores
from excise.utils import cache_dir, stable_hash


def library_version() -> str:
    from excise import __version__

    return __version__


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the model's config and every parameter and buffer, in name order."""
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_json_string"):
        h.update(cfg.to_json_string(use_diff=False).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def data_fingerprint(records: Iterable[Any]) -> str:
    """Hash of the data records (any JSON-serialisable items, in order)."""
    return stable_hash(list(records))


def scores_key(method: str, params: dict[str, Any], model_fp: str, data_fp: str) -> str:
    return stable_hash(
        {
            "method": method,
            "params": params,
            "model": model_fp,
            "data": data_fp,
            "version": library_version(),
        },
        length=24,
    )


def scores_path(key: str) -> Path:
    return cache_dir() / "scores" / key


def cached_scores(
    method: str,
    params: dict[str, Any],
    model_fp: str,
    data_fp: str,
    compute: Callable[[], Scores],
    use_cache: bool = True,
) -> Scores:
    """Return the cached ``Scores`` for this key, or compute, store and return them."""
    key = scores_key(method, params, model_fp, data_fp)
    path = scores_path(key)
    if use_cache and path.with_suffix(".safetensors").is_file() and path.with_suffix(".json").is_file():
        try:
            return Scores.load(path)
        except Exception:  # noqa: BLE001 - a corrupt entry is recomputed
            pass
    scores = compute()
    scores.meta.update(
        {
            "method": method,
            "params": params,
            "model_fingerprint": model_fp,
            "data_fingerprint": data_fp,
            "version": library_version(),
            "cache_key": key,
        }
    )
    if use_cache:
        scores.save(path)
    return scores
