"""Fine-tuning with the Hugging Face ``Trainer``, optionally with a selection of weights frozen.

Freezing is exact: a gradient mask on each parameter zeroes the gradient of the selected
entries, and after every optimizer step the frozen entries are copied back, because AdamW's
decoupled weight decay moves weights whose gradient is zero.

Partial freezing scales the *update* of the selected entries, not their gradient: Adam divides
the gradient by its own running magnitude, so a scaled gradient gives (almost) the same step.
After every optimizer step a selected entry becomes ``old + f * (new - old)``.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _check_args(args: FinetuneArgs) -> None:
    if not 0.0 <= args.update_scale <= 1.0:
        raise ExciseError(
            f"update_scale must be in [0, 1] (0 = frozen, 1 = free), got {args.update_scale}"
        )
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


class FreezeCallback:
    """Freezes (``update_scale`` 0) or slows (0 < f < 1) the selected entries of each parameter.

    ``f == 0``: the gradient of selected entries is zeroed and, after every optimizer step, their
    initial values are copied back (bit-identical at the end). ``0 < f < 1``: before each step the
    selected entries are remembered, after it they become ``old + f * (new - old)``.
    """

    def __init__(self, model: nn.Module, frozen: Selection, update_scale: float = 0.0):
        if frozen.unit != "weight":
            raise ExciseError(
                f"freezing needs a selection of unit 'weight', got '{frozen.unit}' "
                "(select weights, e.g. with top or set_difference on weight scores)"
            )
        params = dict(model.named_parameters())
        missing = [k for k in frozen if k not in params]
        if missing:
            raise ExciseError(
                f"frozen selection names parameters the model does not have: {missing[:3]} "
                "(was the mask computed on another model?)"
            )
        self.params = {k: params[k] for k in frozen if frozen[k].any()}
        self.masks = {k: frozen[k].to(params[k].device) for k in self.params}
        for k, p in self.params.items():
            if self.masks[k].shape != p.shape:
                raise ExciseError(
                    f"mask for {k} has shape {tuple(self.masks[k].shape)}, parameter {tuple(p.shape)}"
                )
        self.update_scale = float(update_scale)
        self.saved = {k: p.detach()[self.masks[k]].clone() for k, p in self.params.items()}
        self.handles = []
        if self.update_scale == 0.0:
            for k in self.params:
                keep = (~self.masks[k]).to(self.params[k].dtype)
                self.handles.append(self.params[k].register_hook(lambda g, f=keep: g * f))

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
        for h in self.handles:
            h.remove()


def finetune(
    model: nn.Module,
    tokenizer: Any,
    data: Sequence[Example],
    args: FinetuneArgs = FinetuneArgs(),
    frozen: Selection | None = None,
    output_dir: str | Path | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on prompt/response ``data`` (loss on responses); returns the final metrics."""
    import tempfile

    from transformers import Trainer, TrainerCallback, TrainingArguments

    _check_args(args)
    if not data:
        raise ExciseError("the fine-tuning data set is empty")
    enc = encode(tokenizer, data, args.max_length)
    pid = pad_id(tokenizer)

    def collator(items: list[Encoded]) -> dict[str, torch.Tensor]:
        b = collate(items, pid)
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    freeze = FreezeCallback(model, frozen, args.update_scale) if frozen is not None else None

    class _Restore(TrainerCallback):
        def on_pre_optimizer_step(self, *a: Any, **k: Any) -> None:
            if freeze is not None:
                freeze.before_step()

        def on_optimizer_step(self, *a: Any, **k: Any) -> None:
            if freeze is not None:
                freeze.restore()

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
        callbacks=[_Restore()],
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
    return {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
