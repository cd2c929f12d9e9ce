"""Toy target models for SPD, trained offline by the project and cached by recipe hash.

- Toy Model of Superposition (Elhage et al. 2022): y = ReLU(Wᵀ [I] W x + b), features x_i ~ U[0, 1]
  with probability p (else 0).
- Residual MLP of compressed computation (Braun et al. 2025): y_i ≈ x_i + ReLU(x_i) computed through a
  fixed random unit-norm embedding W_E (unembedding W_Eᵀ) and residual MLP blocks, x_i ~ U[-1, 1]
  with probability p.

Trained weights live in ``cache_dir()/"toys"/<kind>-<recipe hash>.safetensors`` (plus a JSON sidecar
with the recipe and the final training loss), written atomically, so the same recipe is trained once.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from excise.errors import ExciseError
from excise.models.toy_recipes import ResidMLPRecipe, TMSRecipe, ToyRecipe
from excise.utils import atomic_write_bytes, atomic_write_json, cache_dir, progress, stable_hash

RECIPE_VERSION = 1


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------


class TMSModel(nn.Module):
    """y = ReLU(linear2(hidden_layers(linear1(x)))) with linear1 = W, linear2 = (Wᵀ, b), hidden = I."""

    def __init__(self, n_features: int, n_hidden: int, n_hidden_layers: int = 0) -> None:
        super().__init__()
        self.n_features, self.n_hidden = n_features, n_hidden
        self.linear1 = nn.Linear(n_features, n_hidden, bias=False)
        self.hidden_layers = nn.ModuleList(
            nn.Linear(n_hidden, n_hidden, bias=False) for _ in range(n_hidden_layers)
        )
        for layer in self.hidden_layers:
            assert isinstance(layer, nn.Linear)
            with torch.no_grad():
                layer.weight.copy_(torch.eye(n_hidden))
        self.linear2 = nn.Linear(n_hidden, n_features, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(Wᵀ I W x + b)."""
        h = self.linear1(x)
        for layer in self.hidden_layers:
            h = layer(h)
        return F.relu(self.linear2(h))

    @property
    def W(self) -> torch.Tensor:
        """The embedding matrix W (n_hidden x n_features) whose columns are the true mechanisms."""
        return self.linear1.weight


class ResidBlock(nn.Module):
    """One residual MLP block: mlp_out(ReLU(mlp_in(r)))."""

    def __init__(self, d_embed: int, d_mlp: int) -> None:
        super().__init__()
        self.mlp_in = nn.Linear(d_embed, d_mlp)
        self.mlp_out = nn.Linear(d_mlp, d_embed)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """W_out ReLU(W_in r + b_in) + b_out."""
        return self.mlp_out(F.relu(self.mlp_in(r)))


class ResidMLP(nn.Module):
    """r = x W_E; r += block_l(r) for each layer; y = r W_Eᵀ (W_E fixed, rows of unit norm)."""

    W_E: torch.Tensor

    def __init__(self, n_features: int, d_embed: int, d_mlp: int, n_layers: int, embed_seed: int = 0) -> None:
        super().__init__()
        if d_mlp % n_layers:
            raise ExciseError(
                f"d_mlp={d_mlp} does not split evenly over n_layers={n_layers}; choose a multiple of n_layers"
            )
        self.n_features, self.d_embed, self.n_layers = n_features, d_embed, n_layers
        gen = torch.Generator().manual_seed(embed_seed)
        w_e = torch.randn(n_features, d_embed, generator=gen)
        self.register_buffer("W_E", w_e / w_e.norm(dim=1, keepdim=True))
        self.layers = nn.ModuleList(ResidBlock(d_embed, d_mlp // n_layers) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream of the embedded features, read out by W_Eᵀ."""
        r = x @ self.W_E
        for block in self.layers:
            r = r + block(r)
        return r @ self.W_E.T


# ----------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------


def sparse_features(
    batch_size: int,
    n_features: int,
    p: float,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """x_i = U[low, high] with probability p, else 0, independently per feature."""
    values = torch.rand(batch_size, n_features, generator=generator, device=device)
    active = torch.rand(batch_size, n_features, generator=generator, device=device) < p
    return (low + (high - low) * values) * active


def tms_batch(
    recipe: TMSRecipe, batch_size: int, generator: torch.Generator | None = None, device: str = "cpu"
) -> torch.Tensor:
    """A batch of TMS inputs: x_i ~ U[0, 1] with probability p."""
    return sparse_features(
        batch_size, recipe.n_features, recipe.feature_probability, 0.0, 1.0, generator, device
    )


def resid_mlp_batch(
    recipe: ResidMLPRecipe, batch_size: int, generator: torch.Generator | None = None, device: str = "cpu"
) -> torch.Tensor:
    """A batch of residual-MLP inputs: x_i ~ U[-1, 1] with probability p."""
    return sparse_features(
        batch_size, recipe.n_features, recipe.feature_probability, -1.0, 1.0, generator, device
    )


def resid_mlp_labels(x: torch.Tensor) -> torch.Tensor:
    """y_i = x_i + ReLU(x_i)."""
    return x + F.relu(x)


# ----------------------------------------------------------------------------------------------------
# Training and cache
# ----------------------------------------------------------------------------------------------------


def recipe_hash(recipe: TMSRecipe | ResidMLPRecipe) -> str:
    """Stable hash of the recipe (and of the training code's version)."""
    return stable_hash({"recipe": recipe.to_dict(), "version": RECIPE_VERSION})


def toy_path(recipe: TMSRecipe | ResidMLPRecipe) -> Path:
    """Cache location ``cache_dir()/toys/<kind>-<hash>.safetensors``."""
    return cache_dir() / "toys" / f"{recipe.kind}-{recipe_hash(recipe)}.safetensors"


def build_toy(recipe: TMSRecipe | ResidMLPRecipe) -> TMSModel | ResidMLP:
    """An untrained model of the recipe's architecture."""
    if isinstance(recipe, TMSRecipe):
        return TMSModel(recipe.n_features, recipe.n_hidden, recipe.n_hidden_layers)
    return ResidMLP(recipe.n_features, recipe.d_embed, recipe.d_mlp, recipe.n_layers, recipe.embed_seed)


def _cosine_lr(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / max(1, total)))


def train_tms(recipe: TMSRecipe, show_progress: bool = True) -> tuple[TMSModel, float]:
    """Train W, b of ReLU(WᵀWx + b) on MSE with tied weights; returns the model and the final loss."""
    gen = torch.Generator().manual_seed(recipe.seed)
    W = nn.Parameter(torch.empty(recipe.n_hidden, recipe.n_features))
    nn.init.xavier_normal_(W, generator=gen)
    b = nn.Parameter(torch.zeros(recipe.n_features))
    opt = torch.optim.AdamW([W, b], lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_ema = float("nan")
    for step in progress(range(recipe.steps), desc="train TMS", disable=None if show_progress else True):
        x = tms_batch(recipe, recipe.batch_size, gen)
        y = F.relu(F.linear(F.linear(x, W), W.T, b))
        loss = F.mse_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= recipe.steps - 100:
            loss_ema = loss.item() if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * loss.item()
    model = TMSModel(recipe.n_features, recipe.n_hidden, recipe.n_hidden_layers)
    with torch.no_grad():
        model.linear1.weight.copy_(W)
        model.linear2.weight.copy_(W.T)
        model.linear2.bias.copy_(b)
    return model, loss_ema


def train_resid_mlp(recipe: ResidMLPRecipe, show_progress: bool = True) -> tuple[ResidMLP, float]:
    """Train the MLP blocks on MSE to y = x + ReLU(x) with a cosine LR; returns the model and final loss."""
    gen = torch.Generator().manual_seed(recipe.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_toy(recipe)
    assert isinstance(model, ResidMLP)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_lr(s, recipe.steps))
    loss_ema = float("nan")
    for step in progress(range(recipe.steps), desc="train ResidMLP", disable=None if show_progress else True):
        x = resid_mlp_batch(recipe, recipe.batch_size, gen)
        loss = F.mse_loss(model(x), resid_mlp_labels(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step >= recipe.steps - 100:
            loss_ema = loss.item() if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * loss.item()
    return model, loss_ema


def load_toy(
    recipe: TMSRecipe | ResidMLPRecipe | dict[str, Any], train: bool = True, show_progress: bool = True
) -> TMSModel | ResidMLP:
    """The trained toy model of ``recipe`` from the cache, training (and caching) it first if needed."""
    from safetensors.torch import load_file, save

    if isinstance(recipe, dict):
        from pydantic import TypeAdapter, ValidationError

        try:
            recipe = TypeAdapter(ToyRecipe).validate_python(recipe)
        except ValidationError as err:
            raise ExciseError(
                f"invalid toy recipe: {err.errors()[0]['msg']} (see excise.models.toys)"
            ) from None
    path = toy_path(recipe)
    model = build_toy(recipe)
    if path.is_file():
        try:
            state = load_file(str(path))
            model.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - a corrupt cache file is retrained
            if not train:
                raise ExciseError(
                    f"cached toy model {path} is unreadable ({err}); delete it to retrain"
                ) from None
        else:
            model.eval().requires_grad_(False)
            return model
    if not train:
        raise ExciseError(f"toy model {path.name} is not cached; call load_toy(recipe) to train it")
    t0 = time.perf_counter()
    trained: TMSModel | ResidMLP
    if isinstance(recipe, TMSRecipe):
        trained, final_loss = train_tms(recipe, show_progress)
    else:
        trained, final_loss = train_resid_mlp(recipe, show_progress)
    seconds = time.perf_counter() - t0
    state = {k: v.detach().contiguous() for k, v in trained.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata={"recipe": json.dumps(recipe.to_dict())}))
    atomic_write_json(
        path.with_suffix(".json"),
        {"recipe": recipe.to_dict(), "final_loss": final_loss, "train_seconds": seconds},
    )
    trained.eval().requires_grad_(False)
    return trained
