"""Per-player optimizers: one module each, registered in :data:`OPTIMIZERS` (every module is imported)."""

from ..discover import import_all
from .base import OPTIMIZERS, Optimizer, per_run

import_all(__name__, __path__)

__all__ = ["OPTIMIZERS", "Optimizer", "per_run"]
