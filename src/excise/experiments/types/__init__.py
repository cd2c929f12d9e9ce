"""Built-in experiment types; importing this package registers them."""

from excise.experiments.types import (
    feature_purity,
    freeze_attack,
    head_pruning,
    quadratic,
    refusal_direction,
    safety_neurons,
    safety_ranks,
    spd,
)

__all__ = [
    "feature_purity",
    "freeze_attack",
    "head_pruning",
    "quadratic",
    "refusal_direction",
    "safety_neurons",
    "safety_ranks",
    "spd",
]
