"""The typed, frozen schema of an SPD experiment (one YAML file per named experiment)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from excise.config import BaseConfig
from excise.models.toy_recipes import ResidMLPRecipe, TMSRecipe


class LMTarget(BaseConfig):
    """An HF causal LM; 'tiny-llama' builds a random Llama from a LlamaConfig in code (no download)."""

    kind: Literal["lm"] = "lm"
    model: str = Field("tiny-llama", description="'tiny-llama', or a local path / hub id (offline)")
    hidden_size: int = Field(64, ge=1)
    intermediate_size: int = Field(128, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    n_kv_heads: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)
    seq_len: int = Field(16, ge=1, description="length of the random token sequences used as data")
    model_seed: int = 0
    initializer_range: float = Field(
        0.2, gt=0, description="init std of the random tiny Llama (0.2: its MLPs change the output, KL ~1.7)"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


Target = Annotated[TMSRecipe | ResidMLPRecipe | LMTarget, Field(discriminator="kind")]


class ModuleSpec(BaseConfig):
    """One name pattern ('*' wildcard) of nn.Linear / nn.Embedding modules and its number of subcomponents."""

    pattern: str = Field(min_length=1)
    C: int

    @field_validator("C")
    @classmethod
    def _c_positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"C must be at least 1 (got {v}); give each pattern C >= 1 subcomponents")
        return v


class DecompositionConfig(BaseConfig):
    """Which modules to decompose, the causal-importance function and the initialisation of U, V."""

    modules: list[ModuleSpec] = Field(min_length=1)
    gate: Literal["mlp", "vector_mlp", "shared_mlp"] = "mlp"
    gate_hidden: int = Field(16, ge=1)
    init: Literal["svd", "pinv", "kaiming"] = "pinv"
    init_samples: int = Field(4096, ge=1, description="data samples the pinv init uses to orient V")

    @model_validator(mode="after")
    def _unique_patterns(self) -> DecompositionConfig:
        seen: set[str] = set()
        for m in self.modules:
            if m.pattern in seen:
                raise ValueError(f"pattern '{m.pattern}' is listed twice; give each pattern once")
            seen.add(m.pattern)
        return self


class LossConfig(BaseConfig):
    """Loss coefficients, the output distance and the p-norm schedule of importance minimality."""

    faithfulness: float = Field(1.0, ge=0)
    stochastic_recon: float = Field(1.0, ge=0)
    stochastic_recon_layerwise: float = Field(1.0, ge=0)
    importance_minimality: float = Field(3e-3, ge=0)
    importance_minimality_warmup_frac: float = Field(
        0.0,
        ge=0,
        le=1,
        description="ramp the minimality coefficient linearly from 0 over this fraction of steps",
    )
    p_start: float = Field(1.0, gt=0, description="p of Σ g^p at the start")
    p_end: float | None = Field(None, gt=0, description="p at the end (None: constant p_start)")
    p_anneal_start_frac: float = Field(0.0, ge=0, le=1)
    p_anneal_end_frac: float = Field(1.0, ge=0, le=1)
    output: Literal["mse", "kl"] = "mse"
    delta_component: bool = Field(
        False,
        description="add W − UV to every masked layer, scaled per input by r ~ U(0, 1), in the stochastic "
        "losses: the residual must not matter, which can stand in for the faithfulness loss",
    )
    n_mask_samples: int = Field(1, ge=1)
    eps: float = Field(1e-12, ge=0)

    @model_validator(mode="after")
    def _frac_order(self) -> LossConfig:
        if self.p_anneal_end_frac < self.p_anneal_start_frac:
            raise ValueError("p_anneal_end_frac must be >= p_anneal_start_frac")
        return self


class TrainConfig(BaseConfig):
    """Optimiser (AdamW), learning-rate schedule, faithfulness warm-up, clipping and device."""

    steps: int = Field(10_000, ge=0)
    batch_size: int = Field(4096, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    lr_warmup_frac: float = Field(0.0, ge=0, le=1)
    lr_final_frac: float = Field(0.0, ge=0, le=1, description="final LR as a fraction of lr (cosine/linear)")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm (None: off)")
    faithfulness_warmup_steps: int = Field(0, ge=0)
    faithfulness_warmup_lr: float = Field(1e-2, gt=0)
    faithfulness_warmup_weight_decay: float = Field(0.0, ge=0)
    fuse_forward_passes: bool = Field(
        True, description="run the stochastic and layerwise passes as one forward on a repeated batch"
    )
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (None: excise.threads.auto_threads())"
    )
    log_every: int = Field(100, ge=1)
    eval_every: int = Field(
        0, ge=0, description="steps between evaluations during training (0: only at the end)"
    )
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints (0: only the final one)")


class EvalConfig(BaseConfig):
    """Evaluation settings: sizes, thresholds and the value of one-hot probe inputs."""

    n_samples: int = Field(8192, ge=1, description="data samples for reconstruction and alive counts")
    one_hot_value: float = Field(1.0, description="feature value of one-hot probes for CI matrices")
    alive_threshold: float = Field(0.1, ge=0, le=1)
    ci_threshold: float = Field(0.5, ge=0, le=1, description="CI above which a subcomponent counts as active")
    mmcs_target: float = Field(0.99, ge=0, le=1)
    plots: bool = True


class SPDConfig(BaseConfig):
    """A whole SPD experiment: target model, decomposition, losses, training and evaluation."""

    name: str = Field(min_length=1)
    seed: int = 0
    target: Target
    decomposition: DecompositionConfig
    loss: LossConfig = Field(default_factory=lambda: LossConfig.model_validate({}))
    train: TrainConfig = Field(default_factory=lambda: TrainConfig.model_validate({}))
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig.model_validate({}))
