"""Causal-importance functions: vectorised gate MLPs and the leaky hard sigmoids of SPD.

All gates of one decomposed matrix are evaluated at once with batched einsums (no Python loop over
the C subcomponents). The raw output is squashed by the lower-leaky hard sigmoid for masks and by the
upper-leaky hard sigmoid for the importance-minimality penalty (Bushnaq et al. 2025, appendix).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from excise.errors import ExciseError

GateType = Literal["mlp", "vector_mlp", "shared_mlp"]
GATE_TYPES: tuple[str, ...] = ("mlp", "vector_mlp", "shared_mlp")
LEAK = 0.01


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ_H(x) = clamp(x, 0, 1)."""
    return x.clamp(0.0, 1.0)


def lower_leaky_hard_sigmoid(x: torch.Tensor, slope: float = LEAK) -> torch.Tensor:
    """σ_H,lower(x) = slope·x for x < 0, x on [0, 1], 1 for x > 1 (used for masks)."""
    return torch.where(x < 0, slope * x, x.clamp(max=1.0))


def upper_leaky_hard_sigmoid(x: torch.Tensor, slope: float = LEAK) -> torch.Tensor:
    """σ_H,upper(x) = 0 for x < 0, x on [0, 1], 1 + slope·(x − 1) for x > 1 (used for the penalty)."""
    return torch.where(x > 1, 1.0 + slope * (x - 1.0), x.clamp(min=0.0))


class ScalarMLPGates(nn.Module):
    """γ_c(h_c) = w_out,c · GELU(w_in,c h_c + b_in,c) + b_out,c for all c at once (paper's gate)."""

    def __init__(self, C: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.randn(C, hidden) * math.sqrt(2.0))
        self.b_in = nn.Parameter(torch.zeros(C, hidden))
        self.w_out = nn.Parameter(torch.randn(C, hidden) * math.sqrt(2.0 / hidden))
        self.b_out = nn.Parameter(torch.zeros(C))

    def forward(self, inner: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Raw gate outputs (..., C) from inner activations h (..., C)."""
        z = F.gelu(torch.addcmul(self.b_in, inner.unsqueeze(-1), self.w_in))
        return (z * self.w_out).sum(-1) + self.b_out


class VectorMLPGates(nn.Module):
    """γ_c(a) = w_out,c · GELU(W_in,cᵀ a + b_in,c) + b_out,c: each gate reads the whole input vector a."""

    def __init__(self, C: int, hidden: int, d_in: int, embedding: bool = False) -> None:
        super().__init__()
        self.embedding = embedding
        self.w_in = nn.Parameter(torch.randn(d_in, C, hidden) * math.sqrt(2.0 / (1 if embedding else d_in)))
        self.b_in = nn.Parameter(torch.zeros(C, hidden))
        self.w_out = nn.Parameter(torch.randn(C, hidden) * math.sqrt(2.0 / hidden))
        self.b_out = nn.Parameter(torch.zeros(C))

    def forward(self, inner: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Raw gate outputs (..., C) from the layer input a (..., d_in), or token ids for embeddings."""
        if x is None:
            raise ExciseError("vector_mlp gates need the layer input; pass x")
        if self.embedding:
            pre = self.w_in[x] + self.b_in
        else:
            pre = torch.einsum("...d,dch->...ch", x.to(self.w_in.dtype), self.w_in) + self.b_in
        return torch.einsum("...ch,ch->...c", F.gelu(pre), self.w_out) + self.b_out


class SharedMLPGates(nn.Module):
    """γ(a) = W_2 GELU(W_1 a + b_1) + b_2: one small MLP maps the input vector to all C gates."""

    def __init__(self, C: int, hidden: int, d_in: int, embedding: bool = False) -> None:
        super().__init__()
        self.embedding = embedding
        self.fc1 = nn.Embedding(d_in, hidden) if embedding else nn.Linear(d_in, hidden)
        self.bias1 = nn.Parameter(torch.zeros(hidden)) if embedding else None
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, inner: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Raw gate outputs (..., C) from the layer input a (..., d_in), or token ids for embeddings."""
        if x is None:
            raise ExciseError("shared_mlp gates need the layer input; pass x")
        pre = self.fc1(x) + self.bias1 if self.bias1 is not None else self.fc1(x.to(self.fc2.weight.dtype))
        return self.fc2(F.gelu(pre))


def make_gates(kind: str, C: int, hidden: int, d_in: int, embedding: bool = False) -> nn.Module:
    """Build the causal-importance function of one decomposed matrix."""
    if hidden < 1:
        raise ExciseError(f"gate hidden width must be >= 1, got {hidden}; set decomposition.gate_hidden")
    if kind == "mlp":
        return ScalarMLPGates(C, hidden)
    if kind == "vector_mlp":
        return VectorMLPGates(C, hidden, d_in, embedding)
    if kind == "shared_mlp":
        return SharedMLPGates(C, hidden, d_in, embedding)
    raise ExciseError(f"unknown gate type '{kind}'; choose one of {', '.join(GATE_TYPES)}")
