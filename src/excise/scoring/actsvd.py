"""ActSVD (Wei et al. 2024): the activation-aware output basis of every Linear.

For a Linear W (d_out x d_in, ``nn.Linear`` orientation; GPT-2's ``Conv1D`` is transposed first)
and its inputs X at the scored tokens (response tokens, padding excluded), the basis is the left
singular vectors of W X^T, i.e. the eigenvectors of W Sigma W^T with Sigma = X^T X. Sigma is
streamed from forward pre-hooks (float64 by default; no activation is stored), one Gram per
distinct layer input (q/k/v share one, gate/up share one), and W Sigma W^T is eigendecomposed
exactly. Scores are the top R = min(d_out, d_in) eigenvalues (descending: the squared singular
values of W X^T); the basis (d_out x R, columns in the same order) is the companion ``basis``.

Modes: ``one-pass`` records every Gram in one forward per batch; ``sequential`` goes block by block
(a forward per batch that stops after the block), so only one block's Grams are in memory; with an
edit between blocks (``excise.interventions.lowrank.remove_ranks_sequential``) each block's Grams
are recorded after the earlier blocks were edited, as in the reference.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from excise.core import Scores
from excise.data import Batch
from excise.errors import ExciseError
from excise.hooks import hooks
from excise.models.adapters import LAYOUTS, decoder_layers, weight_in_axis
from excise.scoring.base import (
    accepts_logits_to_keep,
    eval_mode,
    input_device,
    scored_positions,
    weight_key,
    weight_of,
)
from excise.utils import progress

BASIS_DOC = (
    "per matrix: the ActSVD output basis U (d_out x R, float32, columns orthonormal, in the order of "
    "the scores: eigenvectors of W X^T X W^T, W in nn.Linear (out, in) orientation, Conv1D transposed)"
)
GRAM_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the block of interest has run."""


def out_in_weight(module: nn.Module) -> torch.Tensor:
    """The module's weight as a (d_out, d_in) matrix (GPT-2 ``Conv1D`` stores (d_in, d_out)); a view."""
    w = weight_of(module).detach()
    return w.t() if weight_in_axis(module) == 0 else w


def _forward(model: nn.Module, batch: Batch, dev: torch.device) -> None:
    extra: dict[str, Any] = {"use_cache": False}
    if accepts_logits_to_keep(model):
        extra["logits_to_keep"] = 1
    with contextlib.suppress(_Stop):  # a hook ended the pass after the block of interest
        model(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev), **extra)


def input_groups(model: nn.Module, modules: dict[str, nn.Module], batch: Batch) -> list[list[str]]:
    """Modules grouped by the input tensor they read (one probe forward of one sample).

    q/k/v read one tensor, gate/up read one: each group shares one Gram.
    """
    seen: list[tuple[torch.Tensor, list[str]]] = []

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        for t, names in seen:
            if t is x:
                names.append(name)
                return
        seen.append((x, [name]))

    probe = Batch(batch.input_ids[:1], batch.attention_mask[:1], batch.labels[:1])
    with eval_mode(model), torch.no_grad(), hooks(modules, forward_pre=pre):
        _forward(model, probe, input_device(model))
    groups = [names for _, names in seen]
    missing = [n for n in modules if not any(n in g for g in groups)]
    return groups + [[n] for n in missing]


def stream_grams(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Sequence[Batch],
    dtype: torch.dtype = torch.float64,
    stop_after: nn.Module | None = None,
    desc: str = "actsvd",
) -> tuple[dict[str, torch.Tensor], int]:
    """Sigma = sum over response tokens of x x^T for the input x of each module (on its device).

    ``modules`` should hold one module per distinct input (see ``input_groups``). ``stop_after``: end
    each forward once that module has run. Returns the Grams and the number of tokens.
    """
    grams: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        pos = state["pos"]
        if x.numel() // x.shape[-1] != pos.numel():
            raise ExciseError(
                f"module '{name}' does not take (batch, tokens, features) inputs; actsvd cannot score it"
            )
        if pos.device != x.device:
            pos = pos.to(x.device)
        xs = x.reshape(-1, x.shape[-1])[pos.reshape(-1)].to(dtype)  # OPT flattens tokens before its MLP
        g = xs.T @ xs
        if name in grams:
            grams[name] += g
        else:
            grams[name] = g

    def stop(_name: str, _m: nn.Module, _i: tuple[Any, ...], _o: Any) -> None:
        raise _Stop

    dev = input_device(model)
    n = 0
    stopper = {"stop": stop_after} if stop_after is not None else {}
    with eval_mode(model), torch.no_grad(), hooks(modules, forward_pre=pre), hooks(stopper, forward=stop):
        for batch in progress(batches, desc=desc, total=len(batches)):
            pos = scored_positions(batch, "response")
            if not bool(pos.any()):
                continue
            state["pos"] = pos.to(dev)
            n += int(pos.sum())
            _forward(model, batch, dev)
    return grams, n


def rank_basis(w: torch.Tensor, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top R = min(d_out, d_in) eigenpairs of W Sigma W^T (descending), in float64 on W's device.

    Signs are fixed (each vector's largest-magnitude entry is positive) so the basis is reproducible.
    """
    w64 = w.to(device=gram.device, dtype=torch.float64)
    g64 = gram.to(torch.float64)
    m = w64 @ g64 @ w64.T
    m = (m + m.T) / 2
    vals, vecs = torch.linalg.eigh(m)
    r = min(w.shape)
    vals = vals.flip(0)[:r].clamp_min(0)
    vecs = vecs.flip(1)[:, :r]
    idx = vecs.abs().argmax(0)
    sign = torch.sign(vecs[idx, torch.arange(r, device=vecs.device)])
    sign[sign == 0] = 1
    return vals, vecs * sign


def _bases(
    modules: dict[str, nn.Module], groups: list[list[str]], grams: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Eigenvalues and bases (CPU, float32) of every module of the groups, from the leaders' Grams."""
    vals: dict[str, torch.Tensor] = {}
    basis: dict[str, torch.Tensor] = {}
    for group in groups:
        gram = grams.get(group[0])
        for name in group:
            w = out_in_weight(modules[name])
            if gram is None:  # no scored token reached it
                d_in = w.shape[1]
                gram = torch.zeros(d_in, d_in, dtype=torch.float64, device=w.device)
            v, u = rank_basis(w, gram)
            vals[weight_key(name)] = v.float().cpu()
            basis[weight_key(name)] = u.float().cpu()
    return vals, basis


def blocks_of(model: nn.Module, modules: dict[str, nn.Module]) -> list[tuple[nn.Module | None, list[str]]]:
    """The target modules grouped by decoder layer (in order), with the layer to stop after.

    Modules outside every decoder layer come last, in a group whose forward runs to the end.
    """
    mt = getattr(getattr(model, "config", None), "model_type", None)
    lay = LAYOUTS.get(mt)  # type: ignore[arg-type]
    if lay is None:
        raise ExciseError(
            f"actsvd mode 'sequential' needs the decoder layers of the model, and architecture '{mt}' "
            "has no adapter; use mode 'one-pass' (it works on any model)"
        )
    pat = re.compile(rf"^{re.escape(lay.layers)}\.(\d+)\.")
    layers = decoder_layers(model)
    by_layer: dict[int, list[str]] = {}
    other: list[str] = []
    for name in modules:
        m = pat.match(name)
        if m:
            by_layer.setdefault(int(m.group(1)), []).append(name)
        else:
            other.append(name)
    out: list[tuple[nn.Module | None, list[str]]] = [(layers[i], by_layer[i]) for i in sorted(by_layer)]
    if other:
        out.append((None, other))
    return out


def block_scores(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Sequence[Batch],
    groups: list[list[str]],
    stop_after: nn.Module | None,
    dtype: torch.dtype = torch.float64,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Eigenvalues and bases of one block's modules (only this block's Grams are held)."""
    leaders = {g[0]: modules[g[0]] for g in groups}
    grams, n = stream_grams(model, leaders, batches, dtype, stop_after=stop_after)
    vals, basis = _bases(modules, groups, grams)
    del grams
    return vals, basis, n


def iter_blocks(
    model: nn.Module, modules: dict[str, nn.Module], batches: Sequence[Batch]
) -> Iterator[tuple[nn.Module | None, dict[str, nn.Module], list[list[str]]]]:
    """(layer to stop after, its target modules, their input groups) for each block, in order."""
    groups = input_groups(model, modules, batches[0])
    for layer, names in blocks_of(model, modules):
        mods = {n: modules[n] for n in names}
        gs = [[n for n in g if n in mods] for g in groups]
        yield layer, mods, [g for g in gs if g]


def actsvd_scores(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Sequence[Batch],
    mode: str = "one-pass",
    gram_dtype: str = "float64",
    between_blocks: Callable[[dict[str, nn.Module]], None] | None = None,
) -> Scores:
    """ActSVD scores (eigenvalues, unit ``rank``) with the basis of every module as a companion.

    ``between_blocks(block_modules)``: called in ``sequential`` mode after each block was scored
    (an edit there changes what the later blocks see).
    """
    if mode not in ("one-pass", "sequential"):
        raise ExciseError(f"actsvd mode must be 'one-pass' or 'sequential', got {mode!r}")
    if gram_dtype not in GRAM_DTYPES:
        raise ExciseError(f"gram_dtype must be one of {', '.join(GRAM_DTYPES)}, got {gram_dtype!r}")
    if not batches:
        raise ExciseError("actsvd needs calibration data with at least one response token")
    dtype = GRAM_DTYPES[gram_dtype]
    vals: dict[str, torch.Tensor] = {}
    basis: dict[str, torch.Tensor] = {}
    if mode == "one-pass":
        if between_blocks is not None:
            raise ExciseError("an edit between blocks needs actsvd mode 'sequential'")
        groups = input_groups(model, modules, batches[0])
        v, b, n = block_scores(model, modules, batches, groups, None, dtype)
        vals.update(v)
        basis.update(b)
    else:
        n = 0
        for layer, mods, groups in iter_blocks(model, modules, batches):
            v, b, n = block_scores(model, mods, batches, groups, layer, dtype)
            vals.update(v)
            basis.update(b)
            if between_blocks is not None:
                between_blocks(mods)
    if n == 0:
        raise ExciseError("the calibration data has no response tokens; actsvd scores the response tokens")
    meta = {
        "n_tokens": n,
        "mode": mode,
        "gram_dtype": gram_dtype,
        "R": {k: int(v.numel()) for k, v in vals.items()},
        "orientation": "out_in",
    }
    return Scores(
        vals, unit="rank", meta=meta, companions={"basis": basis}, companion_doc={"basis": BASIS_DOC}
    )
