"""Stochastic parameter decomposition (Bushnaq, Braun, Sharkey 2025, arXiv 2506.20790).

Typical use::

    from excise.spd import decompose, train_spd, LossConfig, TrainConfig
    spd = decompose(model, {"layers.*.mlp_in": 100, "layers.*.mlp_out": 100})
    train_spd(spd, batch_fn, LossConfig(), TrainConfig(steps=1000))

or run a registered experiment: ``run_experiment("tms_5-2")`` / ``excise spd run tms_5-2``.

Names load on first use (``excise.utils.lazy_exports``).
"""

from __future__ import annotations

from excise.utils import lazy_exports

_EXPORTS = {
    "Components": ".components",
    "EmbeddingComponents": ".components",
    "SPDModel": ".components",
    "decompose": ".components",
    "model_output": ".components",
    "DecompositionConfig": ".config",
    "EvalConfig": ".config",
    "LMTarget": ".config",
    "LossConfig": ".config",
    "SPDConfig": ".config",
    "TrainConfig": ".config",
    "lower_leaky_hard_sigmoid": ".gates",
    "upper_leaky_hard_sigmoid": ".gates",
    "annealed_p": ".losses",
    "faithfulness_loss": ".losses",
    "importance_minimality_loss": ".losses",
    "output_distance": ".losses",
    "stochastic_masks": ".losses",
    "alive_counts": ".metrics",
    "causal_importance_on": ".metrics",
    "identity_ci_errors": ".metrics",
    "mmcs_ml2r": ".metrics",
    "reconstruction": ".metrics",
    "resid_mlp_recovery": ".metrics",
    "RunResult": ".registry",
    "list_experiments": ".registry",
    "load_config": ".registry",
    "load_run": ".registry",
    "run_experiment": ".registry",
    "causal_importance_scores": ".scores",
    "TrainResult": ".train",
    "lr_factor": ".train",
    "spd_losses": ".train",
    "train_spd": ".train",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
