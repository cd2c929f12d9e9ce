"""Built-in experiment types; importing this package registers them."""

from excise.experiments.types import head_pruning, quadratic, safety_neurons, spd

__all__ = ["head_pruning", "quadratic", "safety_neurons", "spd"]
