"""Built-in experiment types; importing this package registers them."""

from excise.experiments.types import (
    feature_purity,
    freeze_attack,
    head_pruning,
    quadratic,
    safety_neurons,
    spd,
)

__all__ = ["feature_purity", "freeze_attack", "head_pruning", "quadratic", "safety_neurons", "spd"]
