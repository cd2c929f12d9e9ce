"""SNIP / wandg importance (Lee et al. 2019; Wei et al. 2024): I(W) = sum_x |W ⊙ ∇_W L(x)|.

L(x) is the mean NLL over the response tokens of sample x. The sum of *per-sample absolute* values
is the method (a batched backward would give |sum_x ∇_W L(x)|, which is not). Per-sample weight
gradients are built in batches from hooks: the forward hook keeps the layer input x_b and puts a
hook on the layer output; when the output gradient g_b arrives, grad_b = sum_t g_bt x_bt^T is
formed for every sample at once (a batched matmul, in float32), sum_b |grad_b| is added to a
float32 accumulator and the stored input is freed. The batch loss is the *sum* of per-sample mean
losses, so each sample's gradient is its own. Parameters do not require grad (the ordinary
``.grad`` is never computed); the embedding output is made to require grad instead.

The output head and the cross-entropy are computed only at the positions in the loss (a boolean
``logits_to_keep`` where the model takes one): prompt and padding positions have no logits. The
scores are bitwise those of the full-logits path (``logits="all"``), which stays as an option.
``micro_batch`` splits each batch into smaller forward/backward passes: less activation memory,
more time, the same scores to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from excise.data import IGNORE, Batch
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import weight_in_axis
from excise.scoring.base import (
    accepts_logits_to_keep,
    eval_mode,
    input_device,
    input_embeddings,
    weight_key,
    weight_of,
)
from excise.utils import progress

# Largest float32 block of per-sample gradients formed at once for one layer (bytes).
PER_SAMPLE_BLOCK_BYTES = 256 * 2**20


def sample_losses(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean next-token NLL over each sample's scored tokens, shape (B,), float32 (0 where none)."""
    B, T, V = logits.shape
    labels = batch.labels.to(logits.device)
    tgt = torch.cat(
        [labels[:, 1:], torch.full_like(labels[:, :1], IGNORE)], 1
    )  # next token; last predicts none
    nll = F.cross_entropy(
        logits.reshape(-1, V).float(), tgt.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    n = (tgt != IGNORE).sum(1)
    return nll.view(B, T).sum(1) / n.clamp_min(1)


def loss_positions(batch: Batch) -> torch.Tensor:
    """(B, T) bool: positions whose next-token prediction is in the loss (the next label is not IGNORE)."""
    pos = torch.zeros_like(batch.labels, dtype=torch.bool)
    pos[:, :-1] = batch.labels[:, 1:] != IGNORE
    return pos


def sample_losses_at(logits: torch.Tensor, batch: Batch, pos: torch.Tensor) -> torch.Tensor:
    """``sample_losses`` from the logits at the loss positions only: ``logits`` is (pos.sum(), V).

    The per-position NLL is put back into a (B, T) zero tensor before the per-sample sum, so the
    result (and its gradient) is bitwise that of ``sample_losses`` on the full logits.
    """
    pos = pos.to(logits.device)
    labels = batch.labels.to(logits.device)
    tgt = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE)], 1)
    kept = F.cross_entropy(logits.float(), tgt[pos], reduction="none")
    nll = torch.zeros(pos.shape, dtype=kept.dtype, device=kept.device).masked_scatter(pos, kept)
    return nll.sum(1) / pos.sum(1).clamp_min(1)


@contextmanager
def _frozen_params_with_input_grad(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad; the embedding output requires grad so the graph is built."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    emb = input_embeddings(model)
    if emb is None:
        raise ExciseError("snip needs a model with input embeddings (get_input_embeddings() returned None)")

    def make_leaf(_m: nn.Module, _i: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        return out.detach().requires_grad_(True)

    handle = emb.register_forward_hook(make_leaf)
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        handle.remove()
        for p, f in flags:
            p.requires_grad_(f)


def accumulate_per_sample(acc: torch.Tensor, x: torch.Tensor, g: torch.Tensor, in_axis: int) -> None:
    """acc += sum_b |grad_b| with grad_b = g_b^T x_b (Linear, (out, in)) or x_b^T g_b (Conv1D, (in, out))."""
    B = x.shape[0]
    xf = x.reshape(B, -1, x.shape[-1]).float()
    gf = g.reshape(B, -1, g.shape[-1]).float()
    block = max(1, PER_SAMPLE_BLOCK_BYTES // (acc.numel() * 4))
    for s in range(0, B, block):
        xs, gs = xf[s : s + block], gf[s : s + block]
        grads = torch.bmm(gs.transpose(1, 2), xs) if in_axis == 1 else torch.bmm(xs.transpose(1, 2), gs)
        acc += grads.abs_().sum(0)


Logits = Literal["scored", "all"]


def _split(batch: Batch, size: int | None) -> list[Batch]:
    """The batch as consecutive sub-batches of at most ``size`` samples (``None``: the batch itself)."""
    if not size or size >= len(batch):
        return [batch]
    return [
        Batch(batch.input_ids[s : s + size], batch.attention_mask[s : s + size], batch.labels[s : s + size])
        for s in range(0, len(batch), size)
    ]


def _scored_logits_ok(model: nn.Module, modules: dict[str, nn.Module]) -> bool:
    """The head can run on the loss positions only: the model takes ``logits_to_keep`` and the
    head is not itself scored (its per-sample gradient needs its input at every position)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return accepts_logits_to_keep(model) and not any(m is head for m in modules.values())


def snip_abs_grads(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Sequence[Batch],
    *,
    logits: Logits = "scored",
    micro_batch: int | None = None,
) -> dict[str, torch.Tensor]:
    """sum over samples of |∇_W L(x)| for every module weight (float32, on the weight's device).

    ``logits="scored"``: the head runs at the loss positions only (falls back to all positions where
    the model does not take a boolean ``logits_to_keep``, or the head is scored); ``"all"``: every
    position, as a plain forward does. ``micro_batch``: at most this many samples per pass.
    """
    if logits not in ("scored", "all"):
        raise ExciseError(f"logits must be 'scored' or 'all', got {logits!r}")
    if micro_batch is not None and micro_batch < 1:
        raise ExciseError(f"micro_batch must be at least 1, got {micro_batch}")
    keep_scored = logits == "scored" and _scored_logits_ok(model, modules)
    acc = {
        n: torch.zeros(weight_of(m).shape, dtype=torch.float32, device=weight_of(m).device)
        for n, m in modules.items()
    }
    axes = {n: weight_in_axis(m) for n, m in modules.items()}
    state: dict[str, Any] = {"mask": None, "padded": True, "seen": set()}

    def make_grad_hook(name: str, holder: list[torch.Tensor]) -> Callable[[torch.Tensor], None]:
        def on_grad(g: torch.Tensor) -> None:
            x, mask = holder.pop(), holder.pop()
            g = g.detach().reshape(*mask.shape, g.shape[-1])
            if state["padded"]:  # padding contributes nothing (x * 1 == x: skipped when there is none)
                g = g * mask.to(device=g.device, dtype=g.dtype).unsqueeze(-1)
            accumulate_per_sample(acc[name], x, g, axes[name])

        return on_grad

    def fwd(name: str, _m: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        if name in state["seen"]:
            raise ExciseError(
                f"module '{name}' runs more than once per forward pass; snip's per-sample gradients "
                "need each scored layer to run once (leave it out with targets=...)"
            )
        state["seen"].add(name)
        x = inputs[0].detach()
        mask = state["mask"]
        B, T = mask.shape
        if x.dim() < 2 or x.numel() // x.shape[-1] != B * T or output.numel() // output.shape[-1] != B * T:
            raise ExciseError(
                f"module '{name}' does not take (batch, tokens, features) inputs; snip cannot score it"
            )
        x = x.reshape(B, T, x.shape[-1])  # OPT flattens tokens to (B*T, features) before its MLP
        output.register_hook(make_grad_hook(name, [mask, x]))

    dev = input_device(model)
    with (
        eval_mode(model),
        _frozen_params_with_input_grad(model),
        torch.enable_grad(),
        hooks(modules, forward=fwd),
    ):
        for whole in progress(batches, desc="snip", total=len(batches)):
            for batch in _split(whole, micro_batch):
                _snip_pass(model, batch, dev, state, keep_scored)
    return acc


def _snip_pass(
    model: nn.Module, batch: Batch, dev: torch.device, state: dict[str, Any], keep_scored: bool
) -> None:
    """One forward and backward of a batch; the hooks of ``snip_abs_grads`` do the accumulation."""
    pos = loss_positions(batch)
    if not bool(pos.any()):
        return
    state["mask"] = batch.attention_mask.to(dev)
    state["padded"] = not bool(batch.attention_mask.all())
    state["seen"] = set()
    extra: dict[str, Any] = {"logits_to_keep": pos.to(dev)} if keep_scored else {}
    out = model(
        input_ids=batch.input_ids.to(dev),
        attention_mask=batch.attention_mask.to(dev),
        use_cache=False,
        **extra,
    )
    lg = out.logits
    del out
    if keep_scored and lg.dim() == 2 and lg.shape[0] == int(pos.sum()):
        loss = sample_losses_at(lg, batch, pos).sum()
    elif lg.dim() == 3 and lg.shape[:2] == pos.shape:
        loss = sample_losses(lg, batch).sum()  # the model ignored the mask: every position has logits
    else:
        raise ExciseError(
            f"snip got logits of shape {tuple(lg.shape)} for a batch of shape {tuple(pos.shape)}; "
            "pass logits='all' for a model whose logits_to_keep does not take a boolean mask"
        )
    del lg  # sum of per-sample means: each gradient is its own
    if not loss.requires_grad:
        raise ExciseError("snip could not build a gradient graph through this model's input embeddings")
    loss.backward()


def snip_scores(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Sequence[Batch],
    *,
    logits: Logits = "scored",
    micro_batch: int | None = None,
) -> dict[str, torch.Tensor]:
    """I(W) = |W| * sum_x |∇_W L(x)| = sum_x |W ⊙ ∇_W L(x)|, float32 on CPU, weight's own shape.

    ``logits`` and ``micro_batch`` as in ``snip_abs_grads`` (``micro_batch=1``: least memory).
    """
    acc = snip_abs_grads(model, modules, batches, logits=logits, micro_batch=micro_batch)
    out: dict[str, torch.Tensor] = {}
    for n, m in modules.items():
        a = acc.pop(n)  # freed as we go: at most one extra score tensor alive
        out[weight_key(n)] = a.mul_(weight_of(m).detach().float().abs()).cpu()
    return out
