"""Fine-tuning with the Hugging Face ``Trainer``, optionally with a selection of weights frozen.

Freezing is exact: a gradient mask on each parameter zeroes the gradient of the selected
entries, and after every optimizer step the frozen entries are copied back, because AdamW's
decoupled weight decay moves weights whose gradient is zero.

Partial freezing scales the *update* of the selected entries, not their gradient: Adam divides
the gradient by its own running magnitude, so a scaled gradient gives (almost) the same step.
After every optimizer step a selected entry becomes ``old + f * (new - old)``.

Dynamic freezing re-scores the model on its current weights every ``reselect_every`` optimizer
steps (a ``reselect(model) -> Selection`` function, e.g. :func:`safety_critical` with SNIP on the
safety set) and freezes the new selection from then on; every change of the frozen set is logged
(step, count, added, removed, Jaccard with the previous set).

Rewind (:func:`rewind`) restores the selected weights of a fine-tuned model to another model's
values; it is :func:`excise.interventions.prune` with ``base=`` (one operation, not a copy).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from excise.config import BaseConfig
from excise.core import Selection
from excise.data import Encoded, Example, collate, encode, pad_id
from excise.errors import ExciseError


class FinetuneArgs(BaseConfig):
    """Hyper-parameters of one fine-tuning run."""

    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 256
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    update_scale: float = 0.0  # update factor of frozen entries: 0 = fully frozen, in (0, 1) = partial
    max_steps: int = -1
    logging_steps: int = 10
    reselect_every: int | None = None  # dynamic freezing: re-score and re-select every N optimizer steps


log = logging.getLogger("excise.finetune")
Reselect = Callable[[nn.Module], Selection]


def _check_args(args: FinetuneArgs) -> None:
    if not 0.0 <= args.update_scale <= 1.0:
        raise ExciseError(f"update_scale must be in [0, 1] (0 = frozen, 1 = free), got {args.update_scale}")
    if args.reselect_every is not None and args.reselect_every < 1:
        raise ExciseError(f"reselect_every must be at least 1 optimizer step, got {args.reselect_every}")
    if args.batch_size < 1 or args.learning_rate <= 0 or (args.epochs <= 0 and args.max_steps <= 0):
        raise ExciseError(
            "batch_size >= 1, learning_rate > 0 and a positive number of epochs or steps are needed"
        )


class _EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[Encoded]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Encoded:
        return self.items[i]


def check_frozen(model: nn.Module | dict[str, torch.Tensor], frozen: Selection) -> None:
    """ExciseError unless ``frozen`` is a weight selection whose keys and shapes are the model's parameters."""
    params = dict(model.named_parameters()) if isinstance(model, nn.Module) else model
    if frozen.unit != "weight":
        raise ExciseError(
            f"freezing needs a selection of unit 'weight', got '{frozen.unit}' "
            "(select weights, e.g. with top or set_difference on weight scores)"
        )
    missing = [k for k in frozen if k not in params]
    if missing:
        raise ExciseError(
            f"the frozen mask names {len(missing)} tensor(s) this model does not have, e.g. "
            f"'{missing[0]}' (was the mask computed on another model?)"
        )
    for k in frozen:
        if tuple(frozen[k].shape) != tuple(params[k].shape):
            raise ExciseError(
                f"the frozen mask for '{k}' has shape {tuple(frozen[k].shape)} but the parameter is "
                f"{tuple(params[k].shape)} (was the mask computed on another model?)"
            )


class FreezeCallback:
    """Freezes (``update_scale`` 0) or slows (0 < f < 1) the selected entries of each parameter.

    ``f == 0``: the gradient of selected entries is zeroed and, after every optimizer step, their
    values from when they were frozen are copied back (bit-identical at the end). ``0 < f < 1``:
    before each step the selected entries are remembered, after it they become ``old + f * (new - old)``.
    :meth:`update` swaps in a new selection (dynamic freezing): newly selected entries are frozen at
    their current values, entries that left the selection train freely from then on.
    """

    def __init__(self, model: nn.Module, frozen: Selection, update_scale: float = 0.0):
        self.all_params = dict(model.named_parameters())
        self.update_scale = float(update_scale)
        self.params: dict[str, nn.Parameter] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.keep: dict[str, torch.Tensor] = {}
        self.saved: dict[str, torch.Tensor] = {}
        self.handles: dict[str, Any] = {}
        self.masking = True  # False while a re-scoring pass needs the true gradient
        self.selection = frozen
        self._install(frozen)

    def _check(self, frozen: Selection) -> None:
        check_frozen(self.all_params, frozen)

    def _install(self, frozen: Selection) -> None:
        self._check(frozen)
        params = self.all_params
        self.params = {k: params[k] for k in frozen if frozen[k].any()}
        self.masks = {k: frozen[k].to(params[k].device) for k in self.params}
        self.saved = {k: p.detach()[self.masks[k]].clone() for k, p in self.params.items()}
        if self.update_scale == 0.0:
            self.keep = {k: (~m).to(params[k].dtype) for k, m in self.masks.items()}
            for k in self.params:
                if k not in self.handles:
                    self.handles[k] = params[k].register_hook(lambda g, k=k: self._mask_grad(k, g))

    def _mask_grad(self, key: str, grad: torch.Tensor) -> torch.Tensor:
        keep = self.keep.get(key)
        if keep is None or not self.masking:
            return grad
        return grad * keep

    def update(self, frozen: Selection) -> dict[str, Any]:
        """Freeze ``frozen`` from now on; returns what changed (count, added, removed, Jaccard)."""
        self._check(frozen)
        old = self.selection
        added = removed = inter = union = 0
        for k in set(old) | set(frozen):
            a = old[k] if k in old else torch.zeros(self.all_params[k].shape, dtype=torch.bool)
            b = frozen[k] if k in frozen else torch.zeros(self.all_params[k].shape, dtype=torch.bool)
            added += int((b & ~a).sum())
            removed += int((a & ~b).sum())
            inter += int((a & b).sum())
            union += int((a | b).sum())
        self.selection = frozen
        self.keep = {}
        self._install(frozen)
        return {
            "count": frozen.count(),
            "added": added,
            "removed": removed,
            "jaccard": inter / union if union else 1.0,
        }

    def before_step(self) -> None:
        """Remember the selected entries just before an optimizer step (partial freezing only)."""
        if 0.0 < self.update_scale < 1.0:
            self.saved = {k: p.detach()[self.masks[k]].clone() for k, p in self.params.items()}

    def restore(self) -> None:
        """After a step: copy frozen entries back (f = 0) or shrink their update to f times (0 < f < 1)."""
        if self.update_scale >= 1.0:
            return
        f = self.update_scale
        with torch.no_grad():
            for k, p in self.params.items():
                old = self.saved[k].to(p.dtype)
                if f == 0.0:
                    p.data[self.masks[k]] = old
                else:
                    p.data[self.masks[k]] = old + f * (p.data[self.masks[k]] - old)

    def remove(self) -> None:
        for h in self.handles.values():
            h.remove()
        self.handles = {}


def rewind(model: nn.Module, selection: Selection, base: nn.Module) -> int:
    """Restore the selected weights of ``model`` to ``base``'s values (the reference's "rewind").

    The same operation as ``prune(model, selection, base=base)``; returns how many weights were set.
    """
    from excise.interventions import prune

    return prune(model, selection, base=base)


def _progress_disabled() -> bool:
    return not sys.stderr.isatty() or os.environ.get("EXCISE_NO_PROGRESS") == "1"


def finetune(
    model: nn.Module,
    tokenizer: Any,
    data: Sequence[Example],
    args: FinetuneArgs = FinetuneArgs(),
    frozen: Selection | None = None,
    output_dir: str | Path | None = None,
    reselect: Reselect | None = None,
    changes: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on prompt/response ``data`` (loss on responses); returns the final metrics.

    ``frozen``: the weights to freeze (or slow, ``args.update_scale``). Dynamic freezing: with
    ``args.reselect_every = N`` and ``reselect(model) -> Selection``, the frozen set becomes
    ``reselect(model)`` after optimizer steps N, 2N, ... before the last one (``frozen`` is the first set; ``None``:
    ``reselect`` of the initial model). Each re-selection is logged and appended to ``changes``
    (step, count, added, removed, jaccard with the previous set). Returns the Trainer's metrics plus
    ``reselections`` and the last ``loss`` logged.
    """
    import tempfile

    from transformers import Trainer, TrainerCallback, TrainingArguments

    _check_args(args)
    if not data:
        raise ExciseError("the fine-tuning data set is empty; it needs at least one example")
    if args.reselect_every is not None and reselect is None:
        raise ExciseError(
            "reselect_every needs a re-selection function (reselect=...; on the command line: "
            "--freeze-from METHOD --freeze-data SET --sparsity Q)"
        )
    if reselect is not None and args.reselect_every is None:
        raise ExciseError("a re-selection function was given without reselect_every (every how many steps)")
    if frozen is None and reselect is not None:
        frozen = reselect(model)
    enc = encode(tokenizer, data, args.max_length)
    pid = pad_id(tokenizer)

    def collator(items: list[Encoded]) -> dict[str, torch.Tensor]:
        b = collate(items, pid)
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    freeze = FreezeCallback(model, frozen, args.update_scale) if frozen is not None else None

    history = changes if changes is not None else []
    state: dict[str, Any] = {"loss": float("nan"), "bar": None}

    class _Restore(TrainerCallback):
        def on_pre_optimizer_step(self, *a: Any, **k: Any) -> None:
            if freeze is not None:
                freeze.before_step()

        def on_optimizer_step(self, *a: Any, **k: Any) -> None:
            if freeze is not None:
                freeze.restore()

    class _Reselect(TrainerCallback):
        def on_step_end(self, targs: Any, tstate: Any, control: Any, **k: Any) -> None:
            step = int(tstate.global_step)
            if freeze is None or reselect is None or step % int(args.reselect_every or 1):
                return
            if step >= int(tstate.max_steps):  # nothing trains after the last step
                return
            if freeze.update_scale == 0.0:
                freeze.restore()  # exact values before scoring
            freeze.masking = False
            model.eval()
            try:
                new = reselect(model)
            finally:
                model.train()
                freeze.masking = True
                model.zero_grad(set_to_none=True)  # a gradient-based scorer must not leak into training
            change = {"step": step, **freeze.update(new)}
            history.append(change)
            log.info(
                "step %d: frozen set re-selected: %d weights (+%d, -%d, Jaccard %.4f with the previous set)",
                step,
                change["count"],
                change["added"],
                change["removed"],
                change["jaccard"],
            )

    class _Progress(TrainerCallback):
        def on_train_begin(self, targs: Any, tstate: Any, control: Any, **k: Any) -> None:
            from tqdm.auto import tqdm

            state["bar"] = tqdm(
                total=int(tstate.max_steps), desc="fine-tuning", disable=_progress_disabled(), leave=False
            )

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if state["bar"] is not None:
                state["bar"].update(1)

        def on_log(self, targs: Any, tstate: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "loss" in logs:
                state["loss"] = float(logs["loss"])
                if state["bar"] is not None:
                    state["bar"].set_postfix(loss=f"{state['loss']:.4f}")

        def on_train_end(self, *a: Any, **k: Any) -> None:
            if state["bar"] is not None:
                state["bar"].close()
                state["bar"] = None

    tmp = tempfile.TemporaryDirectory() if output_dir is None else None
    out = str(output_dir) if output_dir is not None else tmp.name  # type: ignore[union-attr]
    targs = TrainingArguments(
        output_dir=out,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        data_seed=args.seed,
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    model.train()
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=_EncodedDataset(enc),
        data_collator=collator,
        callbacks=[_Restore(), _Reselect(), _Progress()],
    )
    try:
        result = trainer.train()
    finally:
        if freeze is not None:
            if freeze.update_scale == 0.0:
                freeze.restore()
            freeze.remove()
        model.eval()
        if tmp is not None:
            tmp.cleanup()
    metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    metrics["reselections"] = float(len(history))
    metrics["loss"] = state["loss"]
    return metrics
