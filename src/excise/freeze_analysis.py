"""The freeze-during-fine-tuning analyzer: identify safety-critical weights, freeze them, fine-tune,
re-score the fine-tuned model, and compare the safety-critical sets before and after.

``safety_critical`` = top ``sparsity`` of the method's scores on a safety set, per matrix (SNIP /
wandg or Wanda, as in Wei et al. 2024). ``compare`` gives counts, intersection, union and Jaccard
overall, per decoder layer and per matrix type (``self_attn.q_proj``, ``mlp.down_proj``, ...).
``freeze_finetune`` runs the whole workflow and writes one folder: the fine-tuned model
(``save_pretrained``), ``original_safety_masks`` and ``new_safety_masks`` (safetensors + JSON
sidecar) and ``analysis_summary.json``. The folder appears only when complete.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from excise.core import Selection
from excise.data import Example
from excise.errors import ExciseError
from excise.finetune import FinetuneArgs, finetune
from excise.selection import check_fraction, layer_of, top
from excise.utils import atomic_write_json

SUMMARY = "analysis_summary.json"
ORIGINAL_MASKS = "original_safety_masks"
NEW_MASKS = "new_safety_masks"
_LAYER_PREFIX = re.compile(r"^.*?\.\d+\.")


def matrix_type(name: str) -> str:
    """The kind of matrix a parameter is, without its layer: ``model.layers.3.mlp.up_proj.weight`` -> ``mlp.up_proj``."""
    base = name[: -len(".weight")] if name.endswith(".weight") else name
    return _LAYER_PREFIX.sub("", base, count=1)


def _stats(a: int, b: int, inter: int, union: int) -> dict[str, Any]:
    return {
        "before": a,
        "after": b,
        "intersection": inter,
        "union": union,
        "jaccard": inter / union if union else 1.0,
    }


def _check_same_keys(before: Selection, after: Selection) -> None:
    if set(before) != set(after):
        only = sorted(set(before) ^ set(after))[:3]
        raise ExciseError(f"the two selections cover different tensors (e.g. {only}); score the same layers")
    for k in before:
        if tuple(before[k].shape) != tuple(after[k].shape):
            raise ExciseError(
                f"the two selections disagree on the shape of '{k}': "
                f"{tuple(before[k].shape)} vs {tuple(after[k].shape)}"
            )


def compare(before: Selection, after: Selection) -> dict[str, Any]:
    """What changed between two selections of the same tensors: overall, per layer, per matrix type.

    Counts are numbers of selected weights; Jaccard is |a ∩ b| / |a ∪ b| (1.0 when both are empty).
    """
    _check_same_keys(before, after)
    per_key: dict[str, tuple[int, int, int, int]] = {}
    for k in before:
        a, b = before[k], after[k]
        per_key[k] = (int(a.sum()), int(b.sum()), int((a & b).sum()), int((a | b).sum()))

    def group(by: Any) -> dict[str, dict[str, Any]]:
        acc: dict[str, list[int]] = {}
        for k, v in per_key.items():
            row = acc.setdefault(by(k), [0, 0, 0, 0])
            for i in range(4):
                row[i] += v[i]
        keys = sorted(acc, key=lambda g: (not g.isdigit(), int(g) if g.isdigit() else 0, g))
        return {g: _stats(*acc[g]) for g in keys}

    total = [sum(v[i] for v in per_key.values()) for i in range(4)]
    overall = _stats(*total)
    return {
        "before_count": overall["before"],
        "after_count": overall["after"],
        "intersection_count": overall["intersection"],
        "union_count": overall["union"],
        "jaccard": overall["jaccard"],
        "total_weights": int(sum(t.numel() for t in before.values())),
        "per_layer": group(layer_of),
        "per_matrix_type": group(matrix_type),
        "per_matrix": {k: _stats(*v) for k, v in per_key.items()},
    }


def safety_critical(
    model: nn.Module,
    tokenizer: Any,
    data: Any,
    method: str = "snip",
    sparsity: float = 0.01,
    *,
    scope: str = "matrix",
    batch_size: int = 8,
    max_length: int | None = None,
    use_cache: bool = True,
) -> Selection:
    """The top ``sparsity`` of ``method``'s scores on ``data`` (per matrix by default): the safety-critical weights."""
    from excise.scoring import get_method, score

    sparsity = check_fraction("sparsity", sparsity)
    m = get_method(method)
    if m.unit != "weight":
        raise ExciseError(
            f"freezing needs a weight-level method (snip, wanda, magnitude); '{method}' scores {m.unit}s"
        )
    s = score(
        model, tokenizer, data, m.name, batch_size=batch_size, max_length=max_length, use_cache=use_cache
    )
    sel = top(s, fraction=sparsity, scope=scope)
    sel.meta.update({"method": m.name, "sparsity": sparsity, "scope": scope})
    return sel


def _publish_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename a complete folder into place; an existing ``out`` is swapped out only with ``overwrite``."""
    if out.exists():
        if not overwrite and (not out.is_dir() or any(out.iterdir())):
            raise ExciseError(f"output folder {out} already exists and is not empty; pass --overwrite")
        trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.rename(out, trash / "old")
        os.rename(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, out)


def check_output_folder(out: str | Path, overwrite: bool) -> Path:
    """An output folder that may be written: new, empty, or (with ``overwrite``) replaced when complete."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExciseError(f"--out {out} is a file; pass a folder path")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExciseError(
            f"output folder {out} already exists and is not empty; pass --overwrite to replace it "
            "or choose a new path (nothing was written)"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ExciseError(f"cannot write in {parent}; choose another --out")
    return out


def freeze_finetune(
    model: nn.Module,
    tokenizer: Any,
    train_data: Sequence[Example],
    args: FinetuneArgs,
    out: str | Path,
    *,
    frozen: Selection | None = None,
    method: str | None = None,
    freeze_data: Any = None,
    sparsity: float | None = None,
    scope: str = "matrix",
    score_batch_size: int = 8,
    overwrite: bool = False,
    config: dict[str, Any] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """The analyzer workflow: identify (or take ``frozen``) -> freeze -> fine-tune -> re-score -> compare.

    With ``method``, ``freeze_data`` and ``sparsity`` the safety-critical weights are identified on the
    model before training (unless ``frozen`` is given) and re-identified on the fine-tuned model;
    ``args.reselect_every`` re-identifies them during training too (dynamic freezing). Without them
    only ``frozen`` is frozen and nothing is re-scored. Returns the summary written to
    ``analysis_summary.json``.
    """
    say = log or (lambda msg: None)
    out = check_output_folder(out, overwrite)
    identify = method is not None
    if identify and (freeze_data is None or sparsity is None):
        raise ExciseError("identifying safety-critical weights needs a method, a data set and a sparsity")
    if args.reselect_every is not None and not identify:
        raise ExciseError(
            "dynamic freezing (reselect_every) re-scores the model: give --freeze-from METHOD, "
            "--freeze-data SET and --sparsity Q"
        )
    if not train_data:
        raise ExciseError("the fine-tuning data set is empty; it needs at least one example")
    t0 = time.perf_counter()

    def pick(m: nn.Module, cache: bool = True) -> Selection:
        return safety_critical(
            m, tokenizer, freeze_data, method or "snip", float(sparsity or 0), scope=scope,
            batch_size=score_batch_size, max_length=args.max_length, use_cache=cache,
        )  # fmt: skip

    original = frozen
    if original is None and identify:
        say(f"identifying safety-critical weights: {method}, top {sparsity:g} per {scope}")
        original = pick(model)
    changes: list[dict[str, Any]] = []
    reselect = (lambda m: pick(m, cache=False)) if args.reselect_every is not None else None
    say(
        f"fine-tuning on {len(train_data)} examples with {original.count() if original else 0:,} weights frozen"
    )
    metrics = finetune(model, tokenizer, train_data, args, original, reselect=reselect, changes=changes)
    new = pick(model, cache=False) if identify else None
    summary: dict[str, Any] = {
        "original_safety_critical_count": original.count() if original is not None else 0,
        "new_safety_critical_count": new.count() if new is not None else None,
        "total_neurons": int(original.numel()) if original is not None else None,
        "prune_method": method,
        "prune_data": (config or {}).get("freeze_data") or _name(freeze_data),
        "sparsity_ratio": sparsity,
        "scope": scope,
        "training_data": _name((config or {}).get("data", f"{len(train_data)} examples")),
        "num_training_examples": len(train_data),
        "num_epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "update_scale": args.update_scale,
        "reselect_every": args.reselect_every,
        "frozen_changes": changes,
        "train_metrics": metrics,
        "rescored": new is not None,
    }
    if original is not None and new is not None:
        cmp = compare(original, new)
        summary.update(
            {
                "jaccard": cmp["jaccard"],
                "intersection_count": cmp["intersection_count"],
                "union_count": cmp["union_count"],
                "per_layer": cmp["per_layer"],
                "per_matrix_type": cmp["per_matrix_type"],
            }
        )
    summary["config"] = {**(config or {}), "finetune": args.to_dict()}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if original is not None:
            original.save(tmp / ORIGINAL_MASKS)
        if new is not None:
            new.save(tmp / NEW_MASKS)
        atomic_write_json(tmp / SUMMARY, summary)
        _publish_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _name(data: Any) -> Any:
    if data is None or isinstance(data, str | int | float):
        return data
    if isinstance(data, os.PathLike):
        return str(data)
    try:
        return f"{len(data)} examples"
    except TypeError:
        return str(data)


__all__ = [
    "NEW_MASKS",
    "ORIGINAL_MASKS",
    "SUMMARY",
    "check_output_folder",
    "compare",
    "freeze_finetune",
    "matrix_type",
    "safety_critical",
]
