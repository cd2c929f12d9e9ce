"""The recipes of the SPD toy targets (pydantic only, no torch: configs validate without loading it).

The models and their training are in :mod:`excise.models.toys`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from excise.config import BaseConfig


class TMSRecipe(BaseConfig):
    """How to build and train a Toy Model of Superposition (paper defaults: AdamW, wd 0.01, lr 5e-3)."""

    kind: Literal["tms"] = "tms"
    n_features: int = Field(5, ge=1)
    n_hidden: int = Field(2, ge=1)
    n_hidden_layers: int = Field(0, ge=0, description="fixed identity layers between W and Wᵀ")
    feature_probability: float = Field(0.05, gt=0, le=1)
    steps: int = Field(10_000, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(5e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0


class ResidMLPRecipe(BaseConfig):
    """How to build and train a residual MLP of compressed computation (paper: AdamW, lr 3e-3 cosine)."""

    kind: Literal["resid_mlp"] = "resid_mlp"
    n_features: int = Field(100, ge=1)
    d_embed: int = Field(1000, ge=1)
    d_mlp: int = Field(50, ge=1, description="MLP neurons in total, split evenly over the layers")
    n_layers: int = Field(1, ge=1)
    feature_probability: float = Field(0.01, gt=0, le=1)
    steps: int = Field(10_000, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0
    embed_seed: int = 0


ToyRecipe = Annotated[TMSRecipe | ResidMLPRecipe, Field(discriminator="kind")]

__all__ = ["ResidMLPRecipe", "TMSRecipe", "ToyRecipe"]
