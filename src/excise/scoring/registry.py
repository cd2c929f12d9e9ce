"""The registry of scoring methods: one ``Method`` record per method, one frozen config per method.

A method is ``fn(model, tokenizer, batches, config) -> Scores`` of one unit kind. Its config is a
member of the discriminated union ``MethodConfig`` (on ``method``), so an unknown key is a clear
error and the cache key covers every setting. A new method is one file, one config class and one
entry in ``METHODS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, TypeAdapter, ValidationError

from excise.config import BaseConfig, format_validation_error
from excise.core import Scores
from excise.errors import ExciseError


class ScoringConfig(BaseConfig):
    """Settings every weight- or neuron-level method shares."""

    targets: list[str] | None = Field(
        None, description="glob patterns of the Linear layers to score (None: every Linear but the head)"
    )


class MagnitudeConfig(ScoringConfig):
    """|W| (no data)."""

    method: Literal["magnitude"] = "magnitude"


class WandaConfig(ScoringConfig):
    """|W_ij| * ||X_j||_2 (Sun et al. 2023)."""

    method: Literal["wanda"] = "wanda"
    positions: Literal["response", "next"] = Field(
        "response",
        description="'response': positions whose own token is a response token (the reference's "
        "convention); 'next': positions whose next token is one (those the loss is computed at)",
    )


class WandaRowsConfig(WandaConfig):
    """Structured (row-wise) Wanda: one score per output neuron."""

    method: Literal["wanda-rows"] = "wanda-rows"  # type: ignore[assignment]


class SnipConfig(ScoringConfig):
    """sum over samples of |W * grad L(x)| (per-sample; Lee et al. 2019, Wei et al. 2024)."""

    method: Literal["snip"] = "snip"
    logits: Literal["scored", "all"] = Field(
        "scored", description="'scored': the output head only at loss positions (same scores, faster)"
    )
    micro_batch: int | None = Field(
        None, ge=1, description="samples per backward pass (smaller: less memory, slower; None: whole batch)"
    )


class SPDConfig(BaseConfig):
    """Mean causal importance of each SPD subcomponent over the given inputs."""

    method: Literal["spd"] = "spd"


class HeadsConfig(BaseConfig):
    """Distances between attention heads (per-head outputs or attention patterns; unit head)."""

    method: Literal["heads"] = "heads"
    metric: Literal["euclidean", "cosine", "random"] = "cosine"
    representation: Literal["output", "pattern"] = Field(
        "output",
        description="'output': the head's slice of the output projection's input; 'pattern': softmax weights",
    )
    positions: Literal["all", "response"] = Field(
        "all", description="tokens compared (padding always excluded)"
    )
    seed: int = Field(0, description="seed of the random baseline's distances")


class HeadImportanceConfig(BaseConfig):
    """Gradient head importance E|dL/dxi_h| (Michel et al. 2019; unit head)."""

    method: Literal["head-importance"] = "head-importance"
    normalize: bool = Field(True, description="divide by the L2 norm of each layer's importances")


class ActSVDConfig(ScoringConfig):
    """Eigenbasis of W X^T X W^T per Linear (Wei et al. 2024; unit rank; basis as companion)."""

    method: Literal["actsvd"] = "actsvd"
    mode: Literal["one-pass", "sequential"] = Field(
        "one-pass",
        description="'one-pass': every Gram in one pass; 'sequential': block by block, one "
        "block's Grams in memory",
    )
    gram_dtype: Literal["float64", "float32"] = Field("float64", description="accumulation dtype of X^T X")


class RefusalDirectionConfig(BaseConfig):
    """Difference of mean residual activations, harmful - harmless (Arditi et al. 2024; unit rank)."""

    method: Literal["refusal-direction"] = "refusal-direction"
    harmless: str = Field("utility", description="harmless prompts: a built-in set name or a data file")
    positions: int = Field(5, ge=1, description="candidate positions: the last N prompt tokens")
    max_layer_fraction: float = Field(
        0.8, gt=0, le=1, description="candidate layers l < max_layer_fraction * n_layers"
    )
    kl_threshold: float = Field(0.1, ge=0, description="largest KL on harmless prompts a candidate may cause")
    refusal_tokens: list[str] | None = Field(
        None, description="tokens of the refusal score (None: the first token of each harmful response)"
    )


class PurityConfig(BaseConfig):
    """Feature purity of CLIP projections: sum_i |cos(v_j, v_i)| over rows, i != j (lower = purer)."""

    method: Literal["purity"] = "purity"
    projections: list[str] | None = Field(
        None, description="'image', 'text' or parameter names (None: both sides of a CLIP model)"
    )
    orientation: Literal["auto", "out_in", "in_out"] = Field(
        "auto",
        description="how the weights are stored: out_in (HF nn.Linear), in_out (open_clip); auto: by layout",
    )
    measure: Literal["l1", "l2", "linf"] = Field(
        "l1", description="aggregate over i of |cos| (l1: the research score)"
    )


MethodConfig = Annotated[
    MagnitudeConfig
    | WandaConfig
    | WandaRowsConfig
    | SnipConfig
    | SPDConfig
    | HeadsConfig
    | HeadImportanceConfig
    | ActSVDConfig
    | RefusalDirectionConfig
    | PurityConfig,
    Field(discriminator="method"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(MethodConfig)

ScoreFn = Callable[[torch.nn.Module, Any, Sequence[Any], Any], Scores]
DataKind = Literal["none", "tokens", "inputs"]


@dataclass(frozen=True)
class Method:
    """A scoring method: name, unit kind, config class, the data it reads, and its function."""

    name: str
    unit: str
    config: type[BaseConfig]
    data: DataKind
    fn: ScoreFn
    summary: str

    @property
    def needs_data(self) -> bool:
        return self.data != "none"


def _weight_method(kernel_path: str, options: Callable[[Any], dict[str, Any]] = lambda c: {}) -> ScoreFn:
    """fn for a weight-level kernel ``kernel(model, modules, batches, **options) -> {param: tensor}``."""

    def run(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
        import importlib

        from excise.scoring.base import in_axes, target_modules

        mod_name, fn_name = kernel_path.rsplit(":", 1)
        kernel = getattr(importlib.import_module(mod_name), fn_name)
        modules = target_modules(model, cfg.targets)
        tensors = kernel(model, modules, batches, **options(cfg))
        return Scores(tensors, unit="weight", meta={"in_axis": in_axes(modules), "n_batches": len(batches)})

    return run


def _wanda_rows(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.base import in_axes, target_modules
    from excise.scoring.neurons import wanda_row_scores

    modules = target_modules(model, cfg.targets)
    tensors = wanda_row_scores(model, modules, batches, positions=cfg.positions)
    return Scores(tensors, unit="neuron", meta={"in_axis": in_axes(modules), "n_batches": len(batches)})


def _spd(model: torch.nn.Module, tokenizer: Any, inputs: Sequence[Any], cfg: Any) -> Scores:
    from excise.spd.components import SPDModel
    from excise.spd.scores import causal_importance_scores

    if not isinstance(model, SPDModel):
        raise ExciseError(
            f"method 'spd' scores the subcomponents of an SPDModel (from excise.spd.decompose), "
            f"got {type(model).__name__}"
        )
    return causal_importance_scores(model, inputs[0] if len(inputs) == 1 else torch.cat(list(inputs)))


def _heads(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.heads import head_distance_scores

    return head_distance_scores(model, batches, cfg.metric, cfg.representation, cfg.positions, cfg.seed)


def _head_importance(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.heads import head_importance_scores

    return head_importance_scores(model, batches, cfg.normalize)


def _actsvd(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.actsvd import actsvd_scores
    from excise.scoring.base import target_modules

    return actsvd_scores(model, target_modules(model, cfg.targets), batches, cfg.mode, cfg.gram_dtype)


def _refusal_direction(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.refusal_direction import refusal_direction_scores

    return refusal_direction_scores(model, tokenizer, batches, cfg)


def _purity(model: torch.nn.Module, tokenizer: Any, batches: Sequence[Any], cfg: Any) -> Scores:
    from excise.scoring.purity import purity

    return purity(model, tokenizer, batches, cfg)


METHODS: dict[str, Method] = {
    "magnitude": Method(
        "magnitude", "weight", MagnitudeConfig, "none",
        _weight_method("excise.scoring.magnitude:magnitude_scores"), "|W|",
    ),
    "wanda": Method(
        "wanda", "weight", WandaConfig, "tokens",
        _weight_method("excise.scoring.wanda:wanda_scores", lambda c: {"positions": c.positions}),
        "|W_ij| * ||X_j||_2 on the response tokens",
    ),
    "snip": Method(
        "snip", "weight", SnipConfig, "tokens",
        _weight_method(
            "excise.scoring.snip:snip_scores", lambda c: {"logits": c.logits, "micro_batch": c.micro_batch}
        ),
        "sum over samples of |W * grad L(x)| (per-sample)",
    ),
    "wanda-rows": Method(
        "wanda-rows", "neuron", WandaRowsConfig, "tokens", _wanda_rows,
        "sum_j |W_ij| * ||X_j||_2 per output neuron i (structured Wanda)",
    ),
    "spd": Method(
        "spd", "subcomponent", SPDConfig, "inputs", _spd,
        "mean causal importance g_c(x) of each SPD subcomponent",
    ),
    "heads": Method(
        "heads", "head", HeadsConfig, "tokens", _heads,
        "distance of each head to its nearest neighbour in its layer (euclidean/cosine/random)",
    ),
    "head-importance": Method(
        "head-importance", "head", HeadImportanceConfig, "tokens", _head_importance,
        "E|dL/dxi_h| with a gate xi_h on each head's output (Michel et al. 2019)",
    ),
    "actsvd": Method(
        "actsvd", "rank", ActSVDConfig, "tokens", _actsvd,
        "eigenvalues of W X^T X W^T on the response tokens (basis: companion 'basis')",
    ),
    "refusal-direction": Method(
        "refusal-direction", "rank", RefusalDirectionConfig, "tokens", _refusal_direction,
        "mean(harmful) - mean(harmless) residual per (layer, position); chosen by ablation with a KL filter",
    ),
    "purity": Method(
        "purity", "feature", PurityConfig, "none", _purity,
        "sum_i |cos(v_j, v_i)| of projection rows, summed over image and text (lower = purer)",
    ),
}  # fmt: skip
ALIASES = {"wandg": "snip"}


def get_method(name: str) -> Method:
    """The method called ``name`` (or an alias), or an ExciseError listing the methods."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        names = ", ".join(list(METHODS) + [f"{a} (= {t})" for a, t in ALIASES.items()])
        raise ExciseError(f"unknown scoring method '{name}'; choose one of: {names}")
    return METHODS[key]


def method_config(method: str, **settings: Any) -> BaseConfig:
    """The validated config of ``method`` with ``settings`` (an unknown key is an ExciseError)."""
    m = get_method(method)
    try:
        return m.config.model_validate({**settings, "method": m.name})
    except ValidationError as err:
        keys = ", ".join(k for k in m.config.model_fields if k != "method") or "none"
        msg = format_validation_error(err, f"settings of scoring method '{m.name}'")
        raise ExciseError(f"{msg}; its settings are: {keys}") from None


def parse_method_config(data: dict[str, Any]) -> BaseConfig:
    """A method config from a dict with a ``method`` key (the discriminated union ``MethodConfig``)."""
    try:
        return _ADAPTER.validate_python(
            {**data, "method": ALIASES.get(data.get("method", ""), data.get("method"))}
        )
    except ValidationError as err:
        raise ExciseError(format_validation_error(err, "scoring method config")) from None
