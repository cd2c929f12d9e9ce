"""Wrap any nn.Module and decompose chosen nn.Linear / nn.Embedding weights into rank-one subcomponents.

Each decomposed W (d_out x d_in) becomes U (d_out x C) and V (C x d_in), so that the masked layer
computes y = U diag(m) V a + b = Σ_c U_c m_c (V_c · a) + b (the bias is kept, not decomposed). An
embedding is the linear map of a one-hot token: W = E_weightᵀ (dim x vocab). The target model is never
edited: during a masked forward pass the chosen submodules are swapped for masked replacements and
restored afterwards, even on error.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from excise.errors import ExciseError
from excise.spd.gates import lower_leaky_hard_sigmoid, make_gates, upper_leaky_hard_sigmoid

InitType = Literal["svd", "pinv", "kaiming"]
INIT_TYPES: tuple[str, ...] = ("svd", "pinv", "kaiming")


def _balance(U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale each pair so that ‖U_c‖ = ‖V_c‖ (U_c V_c unchanged)."""
    nu = U.norm(dim=0).clamp_min(1e-12)
    nv = V.norm(dim=1).clamp_min(1e-12)
    s = (nu / nv).sqrt()
    return U / s, V * s.unsqueeze(1)


def _complement_basis(
    rows: torch.Tensor, k: int, generator: torch.Generator, acts: torch.Tensor | None
) -> torch.Tensor:
    """k orthonormal directions orthogonal to ``rows`` (orthonormal, r x d): top principal directions of
    the activations outside span(rows) when given, topped up with random ones."""
    d = rows.shape[1]
    proj = torch.eye(d) - rows.T @ rows
    basis = torch.zeros(d, 0)
    if acts is not None and k > 0:
        A = acts.reshape(-1, d).to(torch.float32).cpu() @ proj
        if A.shape[0] > 0:
            _, S, Vh = torch.linalg.svd(A, full_matrices=False)
            keep = int((S.max() * 1e-4 < S).sum()) if S.numel() else 0
            basis = Vh[: min(k, keep)].T
    need = k - basis.shape[1]
    if need > 0:
        R = proj @ torch.randn(d, need, generator=generator)
        R = R - basis @ (basis.T @ R)
        Q, _ = torch.linalg.qr(R)
        basis = torch.cat([basis, Q], dim=1)
    return basis


def init_factors(
    W: torch.Tensor, C: int, how: str, generator: torch.Generator, acts: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial U (d_out x C), V (C x d_in).

    svd: W = P S Qᵀ, U = P S^½ Rᵀ, V = R S^½ Qᵀ with a random R (C x r, orthonormal columns), so UV = W
    exactly when C ≥ rank(W) (else the best rank-C approximation).
    pinv: V = Z Mᵀ with Z random and M an orthonormal basis of the row space of W completed up to
    min(C, d_in) dimensions by the top principal directions of the layer's inputs ``acts`` outside that
    row space (random directions without ``acts``); rows normalised; U = W V⁺, balanced. UV = W exactly
    when C ≥ rank(W), and V reads where the data lives (unlike svd, whose V sees only the row space of W).
    kaiming: independent random U, V (needs the faithfulness loss or a warm-up to approach W).
    """
    d_out, d_in = W.shape
    W = W.detach().to(torch.float32).cpu()
    if how == "svd":
        P, S, Qh = torch.linalg.svd(W, full_matrices=False)
        r = min(C, int((S.max() * 1e-6 < S).sum()) if S.numel() else 0)
        r = max(r, 1)
        A = torch.randn(C, r, generator=generator)
        R, _ = torch.linalg.qr(A)  # C x r with orthonormal columns
        sq = S[:r].sqrt()
        U = (P[:, :r] * sq) @ R.T
        V = R @ (sq.unsqueeze(1) * Qh[:r])
        return _balance(U, V)
    if how == "pinv":
        if d_in <= C:
            M = torch.eye(d_in)
        else:
            _, S, Qh = torch.linalg.svd(W, full_matrices=False)
            r = min(C, int((S.max() * 1e-6 < S).sum()) if S.numel() else 0)
            comp = _complement_basis(Qh[:r], C - r, generator, acts)
            M = torch.cat([Qh[:r].T, comp], dim=1)  # d_in x C, orthonormal columns
        V = torch.randn(C, M.shape[1], generator=generator) @ M.T
        V = V / V.norm(dim=1, keepdim=True).clamp_min(1e-12)
        U = W @ torch.linalg.pinv(V)
        return _balance(U, V)
    if how == "kaiming":
        V = torch.randn(C, d_in, generator=generator) / math.sqrt(d_in)
        U = torch.randn(d_out, C, generator=generator) / math.sqrt(C)
        return U, V
    raise ExciseError(f"unknown init '{how}'; choose one of {', '.join(INIT_TYPES)}")


class Components(nn.Module):
    """Rank-one subcomponents U_c V_cᵀ of one weight matrix W (d_out x d_in), bias kept frozen."""

    kind = "linear"
    W: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        W: torch.Tensor,
        bias: torch.Tensor | None,
        C: int,
        init: str,
        generator: torch.Generator,
        acts: torch.Tensor | None = None,
    ):
        super().__init__()
        self.C, self.d_out, self.d_in = C, W.shape[0], W.shape[1]
        U, V = init_factors(W, C, init, generator, acts)
        self.U = nn.Parameter(U.to(W.device))
        self.V = nn.Parameter(V.to(W.device))
        self.register_buffer("W", W.detach().clone().to(torch.float32), persistent=False)
        self.register_buffer(
            "bias", None if bias is None else bias.detach().clone().to(torch.float32), persistent=False
        )

    def weight(self) -> torch.Tensor:
        """Σ_c U_c V_cᵀ = U V."""
        return self.U @ self.V

    def subcomponent_weights(self) -> torch.Tensor:
        """The C rank-one matrices U_c V_cᵀ, shape (C, d_out, d_in)."""
        return torch.einsum("oc,ci->coi", self.U, self.V)

    def matvec(self, a: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """M a for a matrix M with d_in columns, on the layer input a (..., d_in) -> (..., rows of M)."""
        return a.to(M.dtype) @ M.T

    def inner(self, a: torch.Tensor) -> torch.Tensor:
        """h_c = V_c · a, shape (..., C)."""
        return self.matvec(a, self.V)

    def output(self, inner: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """y = U (m ⊙ h) + b."""
        h = inner if mask is None else inner * mask
        y = h @ self.U.T
        return y if self.bias is None else y + self.bias

    def delta_output(self, a: torch.Tensor, delta_mask: torch.Tensor) -> torch.Tensor:
        """m_Δ (W − U V) a: the part of W the subcomponents miss, scaled per input by m_Δ (shape (...,))."""
        return delta_mask.unsqueeze(-1) * self.matvec(a, self.W - self.weight())


class EmbeddingComponents(Components):
    """Subcomponents of an embedding, seen as the linear map W = Eᵀ (dim x vocab) applied to one-hot tokens."""

    kind = "embedding"

    def matvec(self, a: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """M applied to one-hot tokens: column M[:, token], shape (..., rows of M)."""
        return nn.functional.embedding(a, M.T)


class _Replacement(nn.Module):
    """Stands in for a decomposed submodule during a masked forward pass."""

    original: nn.Module

    def __init__(self, comp: Components, original: nn.Module) -> None:
        super().__init__()
        self.comp = comp
        object.__setattr__(self, "original", original)  # not a submodule: no duplicate parameters
        self.mask: torch.Tensor | None = None
        self.delta_mask: torch.Tensor | None = None  # per-input scale of W − UV (None: left out)
        self.rows: torch.Tensor | None = None  # per-row choice: True = component, False = original
        self.cached_input: torch.Tensor | None = None
        self.cached_inner: torch.Tensor | None = None

    def forward(self, a: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Masked component output; reuses the inner activations when the input is the cached tensor."""
        inner = self.cached_inner if (self.cached_inner is not None and a is self.cached_input) else None
        if inner is None:
            inner = self.comp.inner(a)
        out = self.comp.output(inner, self.mask)
        if self.delta_mask is not None:
            out = out + self.comp.delta_output(a, self.delta_mask)
        if self.rows is not None:  # fused passes: rows of other passes keep the original weights
            rows = self.rows.reshape(-1, *([1] * (out.dim() - 1)))
            out = torch.where(rows, out, self.original(a, *args, **kwargs).to(out.dtype))
        return out


@dataclass
class CausalImportance:
    """Per decomposed layer: inner activations h, g for masks (lower-leaky), g for the penalty (upper-leaky)."""

    inner: dict[str, torch.Tensor]
    lower: dict[str, torch.Tensor]
    upper: dict[str, torch.Tensor]


def _module_key(name: str) -> str:
    return name.replace(".", "__") or "__root__"


def resolve_modules(
    model: nn.Module, patterns: Mapping[str, int] | Sequence[tuple[str, int]]
) -> dict[str, int]:
    """Map each decomposable module name to its C; every pattern must match, none twice, C ≥ 1."""
    items: list[tuple[str, int]] = (
        list(patterns.items()) if isinstance(patterns, Mapping) else [(str(p[0]), p[1]) for p in patterns]
    )
    if not items:
        raise ExciseError("no modules to decompose; give at least one name pattern with its C")
    seen_patterns: set[str] = set()
    named = dict(model.named_modules())
    out: dict[str, int] = {}
    owner: dict[str, str] = {}
    for pattern, C in items:
        if pattern in seen_patterns:
            raise ExciseError(f"module pattern '{pattern}' is listed twice; give each pattern once")
        seen_patterns.add(pattern)
        if not isinstance(C, int) or isinstance(C, bool) or C < 1:
            raise ExciseError(
                f"C for pattern '{pattern}' must be an integer >= 1, got {C!r}; set C: 1 or more"
            )
        hits = [n for n in named if n and fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            sample = [n for n, m in named.items() if isinstance(m, nn.Linear | nn.Embedding)][:8]
            raise ExciseError(
                f"module pattern '{pattern}' matches no module of the model; use names such as "
                f"{', '.join(sample) or '(the model has no Linear/Embedding)'} ('*' is a wildcard)"
            )
        usable = [n for n in hits if isinstance(named[n], nn.Linear | nn.Embedding)]
        if not usable:
            kinds = sorted({type(named[n]).__name__ for n in hits})
            raise ExciseError(
                f"module pattern '{pattern}' matches only {', '.join(kinds)} modules; SPD decomposes "
                "nn.Linear and nn.Embedding, so point the pattern at those"
            )
        for n in usable:
            if n in owner:
                raise ExciseError(
                    f"module '{n}' is matched by both '{owner[n]}' and '{pattern}'; make the patterns disjoint"
                )
            mod = named[n]
            if isinstance(mod, nn.Embedding) and mod.max_norm is not None:
                raise ExciseError(
                    f"embedding '{n}' uses max_norm, which SPD cannot decompose; unset max_norm"
                )
            owner[n] = pattern
            out[n] = int(C)
    return out


class SPDModel(nn.Module):
    """A target model plus subcomponents and causal-importance gates for its decomposed layers."""

    def __init__(
        self,
        target: nn.Module,
        modules: Mapping[str, int] | Sequence[tuple[str, int]],
        gate_type: str = "mlp",
        gate_hidden: int = 16,
        init: str = "svd",
        seed: int = 0,
        forward_kwargs: Mapping[str, Any] | None = None,
        init_inputs: Any = None,
    ) -> None:
        super().__init__()
        self.target = target
        target.requires_grad_(False)
        target.eval()
        self.forward_kwargs = dict(forward_kwargs or {})
        sizes = resolve_modules(target, modules)
        named = dict(target.named_modules())
        init_acts = _capture_inputs(target, list(sizes), init_inputs, self.forward_kwargs)
        gen = torch.Generator().manual_seed(seed)
        self.layer_names: list[str] = list(sizes)
        self.components = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        self._slots: dict[str, tuple[nn.Module, str, nn.Module]] = {}
        self._replacements: dict[str, _Replacement] = {}
        for name, C in sizes.items():
            mod = named[name]
            key = _module_key(name)
            if isinstance(mod, nn.Embedding):
                comp: Components = EmbeddingComponents(mod.weight.T, None, C, init, gen)
            else:
                assert isinstance(mod, nn.Linear)
                comp = Components(mod.weight, mod.bias, C, init, gen, init_acts.get(name))
            self.components[key] = comp
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                self.gates[key] = make_gates(
                    gate_type, C, gate_hidden, comp.d_in, embedding=isinstance(comp, EmbeddingComponents)
                ).to(mod.weight.device)
            parent_name, _, attr = name.rpartition(".")
            self._slots[name] = (named[parent_name], attr, mod)
            self._replacements[name] = _Replacement(comp, mod)
        self.gate_type, self.gate_hidden = gate_type, gate_hidden

    # --- introspection ------------------------------------------------------------------------------

    def component(self, name: str) -> Components:
        """The subcomponents of the decomposed module ``name``."""
        comp = self.components[_module_key(name)]
        assert isinstance(comp, Components)
        return comp

    def gate(self, name: str) -> nn.Module:
        """The causal-importance function of the decomposed module ``name``."""
        return self.gates[_module_key(name)]

    @property
    def C(self) -> dict[str, int]:
        """Number of subcomponents per decomposed module."""
        return {n: self.component(n).C for n in self.layer_names}

    def decomposition_state_dict(self) -> dict[str, torch.Tensor]:
        """U, V and gate parameters (not the target's weights)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("target.")}

    # --- forward passes -----------------------------------------------------------------------------

    @contextmanager
    def replaced(
        self,
        masks: Mapping[str, torch.Tensor | None],
        cache: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        delta_masks: Mapping[str, torch.Tensor] | None = None,
    ) -> Iterator[None]:
        """Swap the named modules for masked components (mask None = all ones) and restore them after.

        ``delta_masks`` adds the residual W − UV of a swapped layer, scaled per input (the delta component).
        """
        swapped: list[tuple[nn.Module, str, nn.Module]] = []
        try:
            for name, mask in masks.items():
                if name not in self._slots:
                    raise ExciseError(f"'{name}' is not a decomposed module; choose from {self.layer_names}")
                parent, attr, original = self._slots[name]
                rep = self._replacements[name]
                rep.mask = mask
                rep.delta_mask = delta_masks.get(name) if delta_masks else None
                rep.cached_input, rep.cached_inner = cache[name] if cache and name in cache else (None, None)
                parent._modules[attr] = rep
                swapped.append((parent, attr, original))
            yield
        finally:
            for parent, attr, original in swapped:
                parent._modules[attr] = original
            for rep in self._replacements.values():
                rep.mask = rep.delta_mask = rep.rows = rep.cached_input = rep.cached_inner = None

    def forward(
        self,
        x: Any,
        masks: Mapping[str, torch.Tensor | None] | None = None,
        cache: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        delta_masks: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Output of the target with the layers in ``masks`` replaced by U diag(m) V (others untouched),
        plus m_Δ (W − UV) for the layers in ``delta_masks``."""
        with self.replaced(masks or {}, cache, delta_masks):
            return model_output(self.target(x, **self.forward_kwargs))

    def forward_passes(
        self,
        x: torch.Tensor,
        mask_sets: Sequence[Mapping[str, torch.Tensor | None]],
        cache: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        delta_sets: Sequence[Mapping[str, torch.Tensor]] | None = None,
    ) -> list[torch.Tensor]:
        """Outputs of several masked passes (one per mask set) computed as one forward on the repeated batch.

        Exactly the same as ``[self(x, m, cache, d) for m, d in zip(mask_sets, delta_sets)]``: a layer
        absent from a set keeps its original weights on that set's rows. Needs a tensor input whose rows
        are independent.
        """
        if delta_sets is not None and len(delta_sets) != len(mask_sets):
            raise ExciseError("give one delta-mask set per mask set")
        K, B = len(mask_sets), x.shape[0]
        if K == 1:
            return [self(x, mask_sets[0], cache, delta_sets[0] if delta_sets else None)]
        xk = torch.cat([x] * K, dim=0)
        merged: dict[str, torch.Tensor | None] = {}
        rows: dict[str, torch.Tensor] = {}
        for name in self.layer_names:
            present = [name in m for m in mask_sets]
            if not any(present):
                continue
            merged[name] = _cat_filled([m.get(name) for m in mask_sets], torch.ones_like)
            if not all(present):
                rows[name] = torch.tensor(present, device=xk.device).repeat_interleave(B)
        merged_delta: dict[str, torch.Tensor] = {}
        for name in merged:
            d = _cat_filled([ds.get(name) for ds in delta_sets], torch.zeros_like) if delta_sets else None
            if d is not None:
                merged_delta[name] = d
        kcache = {}
        if cache:
            for name, (inp, inner) in cache.items():
                if inp is x and name in merged:
                    kcache[name] = (xk, torch.cat([inner] * K, dim=0))
        with self.replaced(merged, kcache, merged_delta):
            for name, r in rows.items():
                self._replacements[name].rows = r
            out = model_output(self.target(xk, **self.forward_kwargs))
        return list(out.split(B, dim=0))

    def target_forward(self, x: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Target output and the input a^l of every decomposed layer (no gradients)."""
        acts: dict[str, torch.Tensor] = {}
        handles = []
        try:
            for name in self.layer_names:
                mod = self._slots[name][2]
                handles.append(
                    mod.register_forward_pre_hook(lambda m, inp, n=name: acts.__setitem__(n, inp[0]))
                )
            with torch.no_grad():
                out = model_output(self.target(x, **self.forward_kwargs))
        finally:
            for h in handles:
                h.remove()
        return out, acts

    def causal_importances(
        self, acts: Mapping[str, torch.Tensor], detach_inner: bool = False
    ) -> CausalImportance:
        """h^l = V^l a^l and g^l = σ_H(γ^l(h^l)) with lower- and upper-leaky hard sigmoids."""
        inner, lower, upper = {}, {}, {}
        for name in self.layer_names:
            comp = self.component(name)
            h = comp.inner(acts[name])
            raw = self.gate(name)(h.detach() if detach_inner else h, acts[name])
            inner[name] = h
            lower[name] = lower_leaky_hard_sigmoid(raw)
            upper[name] = upper_leaky_hard_sigmoid(raw)
        return CausalImportance(inner, lower, upper)

    def inner_cache(
        self, acts: Mapping[str, torch.Tensor], ci: CausalImportance
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(input, inner) pairs that let a masked pass skip recomputing V a when it sees the same input."""
        return {n: (acts[n], ci.inner[n]) for n in self.layer_names}

    def n_target_params(self) -> int:
        """Number of entries of all decomposed matrices."""
        return int(sum(self.component(n).W.numel() for n in self.layer_names))


def _cat_filled(
    parts: Sequence[torch.Tensor | None], fill: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor | None:
    """Concatenate per-pass tensors along the batch, a missing one replaced by fill(a present one);
    None when all are missing."""
    ref = next((p for p in parts if p is not None), None)
    if ref is None:
        return None
    return torch.cat([p if p is not None else fill(ref) for p in parts], dim=0)


def _capture_inputs(
    target: nn.Module, names: list[str], x: Any, forward_kwargs: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Inputs of the named modules on x (for data-aware initialisation); empty without x."""
    if x is None:
        return {}
    named = dict(target.named_modules())
    acts: dict[str, torch.Tensor] = {}
    handles = [
        named[n].register_forward_pre_hook(lambda m, inp, n=n: acts.__setitem__(n, inp[0].detach()))
        for n in names
    ]
    try:
        with torch.no_grad():
            target(x, **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
    return {n: a for n, a in acts.items() if a.is_floating_point()}


def model_output(out: Any) -> torch.Tensor:
    """The tensor output of a model call: itself, ``.logits``, or the first element of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ExciseError(
        f"cannot read a tensor from the model output of type {type(out).__name__}; "
        "wrap the model so that it returns a tensor or an object with .logits"
    )


def decompose(
    model: nn.Module,
    modules: Mapping[str, int] | Sequence[tuple[str, int]],
    gate_type: str = "mlp",
    gate_hidden: int = 16,
    init: str = "svd",
    seed: int = 0,
    forward_kwargs: Mapping[str, Any] | None = None,
    init_inputs: Any = None,
) -> SPDModel:
    """Wrap ``model`` (unchanged) for SPD of the Linear/Embedding modules matched by ``{pattern: C}``.

    ``init_inputs`` (a batch of model inputs) lets the pinv initialisation point V where the data lives.
    """
    return SPDModel(model, modules, gate_type, gate_hidden, init, seed, forward_kwargs, init_inputs)
