"""Interventions: change a model according to a ``Selection`` of one unit kind."""

from excise.interventions.neurons import neuron_weight_selection
from excise.interventions.prune import ablate, prune
from excise.interventions.subcomponents import ablate_subcomponents

__all__ = ["ablate", "ablate_subcomponents", "neuron_weight_selection", "prune"]
