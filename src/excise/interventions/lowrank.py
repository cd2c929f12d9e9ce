"""Rank-level interventions: remove activation-aware subspaces from weight matrices (ActSVD), and the
refusal direction (ablation by hooks, or orthogonalisation of every residual-stream writer).

Ranks (Wei et al. 2024), per matrix W (d_out x d_in, ``nn.Linear`` orientation; GPT-2's ``Conv1D``
is transposed), with U the ActSVD basis of ``actsvd`` scores and R = min(d_out, d_in):

- ``remove-top`` k: dW = U_k U_k^T W (the top k directions go);
- ``keep-top`` k: dW = (I - U_k U_k^T) W (only the top k directions stay);
- ``orthogonal`` (r_u, r_s): Pi_u projects on the top R - r_u utility directions, Pi_s on the top
  R - r_s safety directions, dW = (I - Pi_u) Pi_s W, so rank(dW) <= min(r_u, R - r_s) (d_out = R);

and W <- W - dW. The random baseline (``ablate_random_ranks``): dW = Q Q^T W with a seeded random
orthonormal Q of a given number of columns per matrix (e.g. the rank(dW) of a matched edit).
Counts are ints (directions) or floats in [0, 1] (fractions of each matrix's R).
Computed in float32 whatever the model's dtype; every call reports rank(dW) per matrix and in total.
``ablate_ranks`` is the reversible form (a context manager; weights bit-identical afterwards),
``remove_ranks`` the permanent one (``save_pretrained`` writes it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from excise.core import Scores, require_unit
from excise.errors import ExciseError
from excise.models.adapters import is_linear, weight_in_axis
from excise.scoring.base import weight_of
from excise.selection import count_for

MODES = ("orthogonal", "remove-top", "keep-top")
RANK_TOL = 4.0  # singular values of dW below 4 * eps32 * ||W||_F count as zero
Count = int | float


@dataclass
class RankReport:
    """What a rank edit did: rank(dW) per matrix (numerical), its bound, each matrix's R, the counts."""

    mode: str
    ranks: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, int] = field(default_factory=dict)
    R: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Sum over matrices of rank(dW)."""
        return sum(self.ranks.values())

    def summary(self) -> str:
        return (
            f"{self.mode}: rank(dW) {self.total} in total over {len(self.ranks)} matrices "
            f"(max {max(self.ranks.values(), default=0)} per matrix, bound {sum(self.bounds.values())})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "total_rank": self.total,
            "ranks": dict(self.ranks),
            "bounds": dict(self.bounds),
            "R": dict(self.R),
            "counts": dict(self.counts),
        }


def rank_count(value: Any, R: int, what: str, key: str) -> int:
    """A count (int, 0..R) or a fraction of R (float in [0, 1], floored) as a number of directions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExciseError(f"{what} must be a number (a count or a fraction of R), got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ExciseError(
                f"{what} = {value} as a fraction of R must lie in [0, 1] (or pass an int count)"
            )
        return count_for(value, R)
    if value < 0:
        raise ExciseError(f"{what} must be at least 0, got {value}")
    if value > R:
        raise ExciseError(f"{what} = {value} exceeds R = min(d_out, d_in) = {R} of matrix '{key}'")
    return int(value)


def _modules_by_key(model: nn.Module, keys: Sequence[str]) -> dict[str, nn.Module]:
    mods = dict(model.named_modules())
    out = {}
    for key in keys:
        mod = mods.get(key.removesuffix(".weight"))
        if mod is None or not key.endswith(".weight") or not is_linear(mod):
            raise ExciseError(
                f"rank scores name '{key}', which is not the weight of a Linear/Conv1D of this model "
                "(were the scores made for another model?)"
            )
        out[key] = mod
    return out


def _basis(scores: Scores, key: str, d_out: int, R: int, role: str) -> torch.Tensor:
    basis = scores.companions.get("basis", {})
    if key not in basis:
        raise ExciseError(
            f"the {role} scores have no basis for '{key}' (rank scores from 'actsvd' carry one per matrix)"
        )
    u = basis[key]
    if tuple(u.shape) != (d_out, R):
        raise ExciseError(f"the {role} basis of '{key}' is {tuple(u.shape)}, the matrix needs ({d_out}, {R})")
    return u


@dataclass
class _Plan:
    key: str
    module: nn.Module
    R: int
    counts: dict[str, int]
    a: torch.Tensor | None  # dW = a @ (b @ W) when factored
    b: torch.Tensor | None
    bound: int


def plan_ranks(
    model: nn.Module,
    safety: Scores,
    utility: Scores | None = None,
    *,
    mode: str = "orthogonal",
    r_u: Count | None = None,
    r_s: Count | None = None,
    k: Count | None = None,
) -> list[_Plan]:
    """Validate the request against every matrix (counts, bases, shapes) before any weight changes."""
    if mode not in MODES:
        raise ExciseError(f"unknown rank-removal mode '{mode}'; choose one of {', '.join(MODES)}")
    require_unit(safety, "rank", "remove_ranks")
    if mode == "orthogonal":
        if utility is None:
            raise ExciseError(
                "mode 'orthogonal' needs utility scores (actsvd on the utility data) next to safety"
            )
        require_unit(utility, "rank", "remove_ranks")
        if r_u is None or r_s is None:
            raise ExciseError("mode 'orthogonal' needs both r_u and r_s (counts or fractions of R)")
        missing = [key for key in safety if key not in utility]
        if missing:
            raise ExciseError(
                f"the utility scores lack '{missing[0]}' (score both sets with the same targets)"
            )
    elif k is None:
        raise ExciseError(f"mode '{mode}' needs k (a count or a fraction of R)")
    plans = []
    for key, mod in _modules_by_key(model, list(safety)).items():
        w = weight_of(mod)
        d_out, d_in = (w.shape[1], w.shape[0]) if weight_in_axis(mod) == 0 else (w.shape[0], w.shape[1])
        R = min(d_out, d_in)
        dev = w.device
        if mode == "orthogonal":
            nu = rank_count(r_u, R, "r_u", key)
            ns = rank_count(r_s, R, "r_s", key)
            us = _basis(safety, key, d_out, R, "safety")[:, : R - ns].to(dev, torch.float32)
            uu = _basis(utility, key, d_out, R, "utility")[:, : R - nu].to(dev, torch.float32)  # type: ignore[arg-type]
            a = us - uu @ (uu.T @ us)  # (I - Pi_u) U_s
            plans.append(_Plan(key, mod, R, {"r_u": nu, "r_s": ns}, a, us.T, min(d_out - (R - nu), R - ns)))
        else:
            nk = rank_count(k, R, "k", key)
            uk = _basis(safety, key, d_out, R, "given")[:, :nk].to(dev, torch.float32)
            if mode == "remove-top":
                plans.append(_Plan(key, mod, R, {"k": nk}, uk, uk.T, nk))
            else:
                plans.append(_Plan(key, mod, R, {"k": nk}, uk, None, min(d_out - nk, R)))
    return plans


def _out_in(w: torch.Tensor, mod: nn.Module) -> torch.Tensor:
    return w.t() if weight_in_axis(mod) == 0 else w


def numerical_rank(dw: torch.Tensor, scale: float, a: torch.Tensor | None = None) -> int:
    """Number of singular values of dW above ``RANK_TOL`` * eps32 * scale (scale: ||W||_F; dW is computed in
    float32, so smaller ones are rounding); ``a``: a thin left factor of dW, which makes it cheaper."""
    tol = RANK_TOL * torch.finfo(torch.float32).eps * scale
    if a is not None and a.shape[1] == 0:
        return 0
    if a is not None and a.shape[1] < min(dw.shape):
        q, _ = torch.linalg.qr(a.double())
        core = q.T @ dw.double()  # dW = q q^T dW: same singular values, m x d_in
        return int((torch.linalg.svdvals(core) > tol).sum())
    return int((torch.linalg.svdvals(dw.double()) > tol).sum())


def _apply(plans: list[_Plan], mode: str) -> RankReport:
    report = RankReport(mode)
    with torch.no_grad():
        for pl in plans:
            p = weight_of(pl.module)
            w = _out_in(p.detach(), pl.module).float()
            assert pl.a is not None
            dw = pl.a @ (pl.b @ w) if pl.b is not None else w - pl.a @ (pl.a.T @ w)
            scale = float(torch.linalg.matrix_norm(w.double()))
            report.ranks[pl.key] = numerical_rank(dw, scale, pl.a if pl.b is not None else None)
            report.bounds[pl.key] = pl.bound
            report.R[pl.key] = pl.R
            report.counts[pl.key] = pl.counts
            new = w - dw
            p.copy_(_out_in(new, pl.module).to(p.dtype))
    return report


def remove_ranks(
    model: nn.Module,
    safety: Scores,
    utility: Scores | None = None,
    *,
    mode: str = "orthogonal",
    r_u: Count | None = None,
    r_s: Count | None = None,
    k: Count | None = None,
) -> RankReport:
    """W <- W - dW in place for every matrix of ``safety`` (see the module docstring for dW)."""
    plans = plan_ranks(model, safety, utility, mode=mode, r_u=r_u, r_s=r_s, k=k)
    return _apply(plans, mode)


@contextmanager
def ablate_ranks(
    model: nn.Module,
    safety: Scores,
    utility: Scores | None = None,
    *,
    mode: str = "orthogonal",
    r_u: Count | None = None,
    r_s: Count | None = None,
    k: Count | None = None,
) -> Iterator[RankReport]:
    """``remove_ranks`` inside the block; afterwards (also on error) every weight is bit-identical to before."""
    plans = plan_ranks(model, safety, utility, mode=mode, r_u=r_u, r_s=r_s, k=k)
    saved = {pl.key: weight_of(pl.module).detach().to("cpu", copy=True) for pl in plans}
    try:
        yield _apply(plans, mode)
    finally:
        with torch.no_grad():
            for pl in plans:
                weight_of(pl.module).copy_(saved[pl.key])


def plan_random_ranks(model: nn.Module, ranks: Mapping[str, int], *, seed: int = 0) -> list[_Plan]:
    """The random baseline of a rank edit: for each matrix ``key`` (a weight name), a random orthonormal
    Q (d_out x ranks[key], Gaussian then QR, seeded by ``seed`` and the key) and dW = Q Q^T W, whose rank is
    ranks[key] for a matrix of full rank. Checked for every matrix before any weight changes."""
    import hashlib

    plans = []
    for key, mod in _modules_by_key(model, list(ranks)).items():
        w = weight_of(mod)
        d_out, d_in = (w.shape[1], w.shape[0]) if weight_in_axis(mod) == 0 else (w.shape[0], w.shape[1])
        R = min(d_out, d_in)
        n = ranks[key]
        if isinstance(n, bool) or not isinstance(n, int):
            raise ExciseError(f"the random rank of '{key}' must be an int count, got {n!r}")
        n = rank_count(n, R, "the random rank", key)
        g = torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16))
        q = torch.zeros(d_out, 0, dtype=torch.float64)
        if n:
            q = torch.linalg.qr(torch.randn(d_out, n, generator=g, dtype=torch.float64))[0]
        q = q.to(w.device, torch.float32)
        plans.append(_Plan(key, mod, R, {"k": n}, q, q.T, n))
    return plans


def remove_random_ranks(model: nn.Module, ranks: Mapping[str, int], *, seed: int = 0) -> RankReport:
    """W <- W - Q Q^T W in place with random Q of ``ranks[key]`` columns per matrix (mode ``random``)."""
    return _apply(plan_random_ranks(model, ranks, seed=seed), "random")


@contextmanager
def ablate_random_ranks(model: nn.Module, ranks: Mapping[str, int], *, seed: int = 0) -> Iterator[RankReport]:
    """``remove_random_ranks`` inside the block; afterwards (also on error) every weight is bit-identical."""
    plans = plan_random_ranks(model, ranks, seed=seed)
    saved = {pl.key: weight_of(pl.module).detach().to("cpu", copy=True) for pl in plans}
    try:
        yield _apply(plans, "random")
    finally:
        with torch.no_grad():
            for pl in plans:
                weight_of(pl.module).copy_(saved[pl.key])


def remove_ranks_sequential(
    model: nn.Module,
    safety: Sequence[Any],
    utility: Sequence[Any] | None = None,
    *,
    mode: str = "orthogonal",
    r_u: Count | None = None,
    r_s: Count | None = None,
    k: Count | None = None,
    targets: Sequence[str] | None = None,
    gram_dtype: str = "float64",
) -> RankReport:
    """The reference's procedure: block by block, score (actsvd) on the batches of the already-edited
    model, then edit that block; one block's Grams in memory at a time. ``safety``/``utility``: batches."""
    from excise.scoring.actsvd import GRAM_DTYPES, block_scores, blocks_of, iter_blocks
    from excise.scoring.base import target_modules

    if mode not in MODES:
        raise ExciseError(f"unknown rank-removal mode '{mode}'; choose one of {', '.join(MODES)}")
    if mode == "orthogonal" and not utility:
        raise ExciseError("mode 'orthogonal' needs utility batches next to the safety batches")
    if not safety:
        raise ExciseError("remove_ranks_sequential needs safety batches with response tokens")
    if gram_dtype not in GRAM_DTYPES:
        raise ExciseError(f"gram_dtype must be one of {', '.join(GRAM_DTYPES)}, got {gram_dtype!r}")
    if mode == "orthogonal" and (r_u is None or r_s is None):
        raise ExciseError("mode 'orthogonal' needs both r_u and r_s (counts or fractions of R)")
    if mode != "orthogonal" and k is None:
        raise ExciseError(f"mode '{mode}' needs k (a count or a fraction of R)")
    modules = target_modules(model, targets)
    blocks_of(model, modules)  # an unsupported architecture fails here, before any forward
    for name, mod in modules.items():  # every count is checked before any forward pass
        R = min(weight_of(mod).shape)
        key = f"{name}.weight"
        for what, v in (("r_u", r_u), ("r_s", r_s)) if mode == "orthogonal" else (("k", k),):
            rank_count(v, R, what, key)
    dtype = GRAM_DTYPES[gram_dtype]
    report = RankReport(mode)
    for layer, mods, groups in iter_blocks(model, modules, safety):
        vs, bs, _ = block_scores(model, mods, safety, groups, layer, dtype)
        s = _rank_scores(vs, bs)
        u = None
        if mode == "orthogonal":
            vu, bu, _ = block_scores(model, mods, utility, groups, layer, dtype)  # type: ignore[arg-type]
            u = _rank_scores(vu, bu)
        part = remove_ranks(model, s, u, mode=mode, r_u=r_u, r_s=r_s, k=k)
        for attr in ("ranks", "bounds", "R", "counts"):
            getattr(report, attr).update(getattr(part, attr))
    return report


def _rank_scores(vals: Mapping[str, torch.Tensor], basis: Mapping[str, torch.Tensor]) -> Scores:
    from excise.scoring.actsvd import BASIS_DOC

    return Scores(
        dict(vals), unit="rank", companions={"basis": dict(basis)}, companion_doc={"basis": BASIS_DOC}
    )


def _unit_direction(direction: Any) -> torch.Tensor:
    if isinstance(direction, Scores):
        sel = direction.companions.get("direction", {}).get("selected")
        if sel is None:
            raise ExciseError(
                "these scores carry no refusal direction (score with method 'refusal-direction')"
            )
        direction = sel
    if not isinstance(direction, torch.Tensor) or direction.dim() != 1:
        raise ExciseError("a direction is a 1-d tensor of the residual width (or refusal-direction scores)")
    r = direction.detach().double()
    norm = float(r.norm())
    if not math.isfinite(norm) or norm == 0.0:
        raise ExciseError("the direction has zero or non-finite length")
    return r / norm


def _check_width(model: nn.Module, writers: Mapping[str, nn.Module], r: torch.Tensor) -> None:
    for name, mod in writers.items():
        w = weight_of(mod)
        d = w.shape[1] if isinstance(mod, nn.Embedding) or weight_in_axis(mod) == 0 else w.shape[0]
        if d != r.numel():
            raise ExciseError(
                f"the direction has {r.numel()} entries but '{name}' writes {d} (another model?)"
            )


@contextmanager
def ablate_direction(model: nn.Module, direction: torch.Tensor | Scores) -> Iterator[None]:
    """Directional ablation by hooks (reversible): every residual writer's output x -> x - r (r . x)."""
    from excise.models.adapters import residual_writers
    from excise.scoring.refusal_direction import direction_ablated

    r = _unit_direction(direction)
    _check_width(model, residual_writers(model), r)
    with direction_ablated(model, r):
        yield


def orthogonalize(model: nn.Module, direction: torch.Tensor | Scores) -> list[str]:
    """W <- W - r r^T W for every residual writer (its bias too), permanently; returns the edited parameters.

    Embeddings (rows are written: E <- E - E r r^T), ``nn.Linear`` (W <- W - r r^T W) and GPT-2's
    ``Conv1D`` (W <- W - W r r^T) alike, in float32 (float64 for float64 models). A tied output head
    gets its own copy of the original embedding first (and ``tie_word_embeddings`` is turned off), so
    the head reads the stream exactly as before: the model equals ``ablate_direction``'s.
    """
    from excise.models.adapters import residual_writers

    writers = residual_writers(model)
    r = _unit_direction(direction)
    _check_width(model, writers, r)
    edited: list[str] = []
    with torch.no_grad():
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        writer_weights = {id(weight_of(m)) for m in writers.values()}
        if isinstance(head, nn.Module) and id(weight_of(head)) in writer_weights:
            hw = weight_of(head)
            head.weight = nn.Parameter(hw.detach().clone(), requires_grad=hw.requires_grad)
            cfg: Any = getattr(model, "config", None)
            if cfg is not None:
                cfg.tie_word_embeddings = False
                text_cfg = getattr(cfg, "get_text_config", None)
                if callable(text_cfg):
                    text_cfg().tie_word_embeddings = False
        for name, mod in writers.items():
            w = weight_of(mod)
            dt = torch.float64 if w.dtype == torch.float64 else torch.float32
            rr = r.to(device=w.device, dtype=dt)
            wf = w.detach().to(dt)
            if isinstance(mod, nn.Embedding) or weight_in_axis(mod) == 0:  # (.., d): rows are written
                new = wf - (wf @ rr)[:, None] * rr[None, :]
            else:  # nn.Linear (d, d_in)
                new = wf - rr[:, None] * (rr @ wf)[None, :]
            w.copy_(new.to(w.dtype))
            edited.append(f"{name}.weight")
            b = getattr(mod, "bias", None)
            if isinstance(b, torch.Tensor):
                bf = b.detach().to(dt)
                b.copy_((bf - (bf @ rr) * rr).to(b.dtype))
                edited.append(f"{name}.bias")
    return edited
