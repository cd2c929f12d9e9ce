"""Interventions: change a model according to a ``Selection`` of one unit kind."""

from excise.interventions.features import keep_features, mask_embeddings
from excise.interventions.heads import duplicate_heads, mask_heads, merge_heads, remove_heads, zero_heads
from excise.interventions.lowrank import (
    RankReport,
    ablate_direction,
    ablate_ranks,
    orthogonalize,
    remove_ranks,
    remove_ranks_sequential,
)
from excise.interventions.neurons import neuron_weight_selection
from excise.interventions.prune import ablate, prune
from excise.interventions.subcomponents import ablate_subcomponents

__all__ = [
    "RankReport",
    "ablate_direction",
    "ablate_ranks",
    "orthogonalize",
    "remove_ranks",
    "remove_ranks_sequential",
    "ablate",
    "ablate_subcomponents",
    "duplicate_heads",
    "keep_features",
    "mask_embeddings",
    "mask_heads",
    "merge_heads",
    "neuron_weight_selection",
    "prune",
    "remove_heads",
    "zero_heads",
]
