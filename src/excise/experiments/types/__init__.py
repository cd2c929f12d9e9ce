"""Built-in experiment types; importing this package registers them."""

from excise.experiments.types import quadratic, safety_neurons, spd

__all__ = ["quadratic", "safety_neurons", "spd"]
