"""Regularization layers and the code that places them into a backbone's groups."""

from layers.placement import place_in_groups
from layers.regularizer import apply_regularizer, regularizer_factories

__all__ = ["apply_regularizer", "place_in_groups", "regularizer_factories"]
