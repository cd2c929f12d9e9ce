"""Stochastic parameter decomposition (Bushnaq, Braun, Sharkey 2025, arXiv 2506.20790).

Typical use::

    from excise.spd import decompose, train_spd, LossConfig, TrainConfig
    spd = decompose(model, {"layers.*.mlp_in": 100, "layers.*.mlp_out": 100})
    train_spd(spd, batch_fn, LossConfig(), TrainConfig(steps=1000))

or run a registered experiment: ``run_experiment("tms_5-2")`` / ``excise spd run tms_5-2``.
"""

from __future__ import annotations

from excise.spd.components import Components, EmbeddingComponents, SPDModel, decompose, model_output
from excise.spd.config import DecompositionConfig, EvalConfig, LMTarget, LossConfig, SPDConfig, TrainConfig
from excise.spd.gates import lower_leaky_hard_sigmoid, upper_leaky_hard_sigmoid
from excise.spd.losses import (
    annealed_p,
    faithfulness_loss,
    importance_minimality_loss,
    output_distance,
    stochastic_masks,
)
from excise.spd.metrics import (
    alive_counts,
    causal_importance_on,
    identity_ci_errors,
    mmcs_ml2r,
    reconstruction,
    resid_mlp_recovery,
)
from excise.spd.registry import (
    RunResult,
    list_experiments,
    load_config,
    load_run,
    run_experiment,
)
from excise.spd.scores import causal_importance_scores
from excise.spd.train import TrainResult, lr_factor, spd_losses, train_spd

__all__ = [
    "Components",
    "DecompositionConfig",
    "EmbeddingComponents",
    "EvalConfig",
    "LMTarget",
    "LossConfig",
    "RunResult",
    "SPDConfig",
    "SPDModel",
    "TrainConfig",
    "TrainResult",
    "alive_counts",
    "annealed_p",
    "causal_importance_on",
    "causal_importance_scores",
    "decompose",
    "faithfulness_loss",
    "identity_ci_errors",
    "importance_minimality_loss",
    "list_experiments",
    "load_config",
    "load_run",
    "lower_leaky_hard_sigmoid",
    "lr_factor",
    "mmcs_ml2r",
    "model_output",
    "output_distance",
    "reconstruction",
    "resid_mlp_recovery",
    "run_experiment",
    "spd_losses",
    "stochastic_masks",
    "train_spd",
    "upper_leaky_hard_sigmoid",
]
