"""Interventions: change a model according to a ``Selection``."""

from excise.interventions.prune import ablate, prune

__all__ = ["ablate", "prune"]
