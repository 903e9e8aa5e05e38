"""Regularizers: one module each, registered in :data:`REGULARIZERS` (every module is imported)."""

from ..discover import import_all
from .base import REGULARIZERS, Regularizer

import_all(__name__, __path__)

__all__ = ["REGULARIZERS", "Regularizer"]
