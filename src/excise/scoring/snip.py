"""SNIP / wandg importance (Lee et al. 2019; Wei et al. 2024): I(W) = sum_x |W ⊙ ∇_W L(x)|.

L(x) is the mean NLL over the response tokens of sample x. The sum of *per-sample absolute* values
is the method (a batched backward would give |sum_x ∇_W L(x)|, which is not). Per-sample weight
gradients are built in batches from hooks: the forward hook keeps the layer input x_b and puts a
hook on the layer output; when the output gradient g_b arrives, grad_b = sum_t g_bt x_bt^T is
formed for every sample at once (a batched matmul, in float32), sum_b |grad_b| is added to a
float32 accumulator and the stored input is freed. The batch loss is the *sum* of per-sample mean
losses, so each sample's gradient is its own. Parameters do not require grad (the ordinary
``.grad`` is never computed); the embedding output is made to require grad instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from excise.data import IGNORE, Batch
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import weight_in_axis
from excise.scoring.base import eval_mode, input_device, input_embeddings, weight_key, weight_of
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


def snip_abs_grads(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch]
) -> dict[str, torch.Tensor]:
    """sum over samples of |∇_W L(x)| for every module weight (float32, on the weight's device)."""
    acc = {
        n: torch.zeros(weight_of(m).shape, dtype=torch.float32, device=weight_of(m).device)
        for n, m in modules.items()
    }
    axes = {n: weight_in_axis(m) for n, m in modules.items()}
    state: dict[str, Any] = {"mask": None, "seen": set()}

    def make_grad_hook(name: str, holder: list[torch.Tensor]) -> Callable[[torch.Tensor], None]:
        def on_grad(g: torch.Tensor) -> None:
            x, mask = holder.pop(), holder.pop()
            g = g.detach().reshape(*mask.shape, g.shape[-1])
            g = g * mask.to(device=g.device, dtype=g.dtype).unsqueeze(-1)  # padding contributes nothing
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
        for batch in progress(batches, desc="snip", total=len(batches)):
            if not bool((batch.labels[:, 1:] != IGNORE).any()):
                continue
            state["mask"] = batch.attention_mask.to(dev)
            state["seen"] = set()
            out = model(
                input_ids=batch.input_ids.to(dev),
                attention_mask=batch.attention_mask.to(dev),
                use_cache=False,
            )
            loss = sample_losses(out.logits, batch).sum()  # sum of per-sample means: each gradient is its own
            del out
            if not loss.requires_grad:
                raise ExciseError(
                    "snip could not build a gradient graph through this model's input embeddings"
                )
            loss.backward()
    return acc


def snip_scores(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch]
) -> dict[str, torch.Tensor]:
    """I(W) = |W| * sum_x |∇_W L(x)| = sum_x |W ⊙ ∇_W L(x)|, float32 on CPU, weight's own shape."""
    acc = snip_abs_grads(model, modules, batches)
    out: dict[str, torch.Tensor] = {}
    for n, m in modules.items():
        a = acc.pop(n)  # freed as we go: at most one extra score tensor alive
        out[weight_key(n)] = a.mul_(weight_of(m).detach().float().abs()).cpu()
    return out
