"""Per-player optimizers, registered in :data:`OPTIMIZERS` by name."""

from . import sgd  # noqa: F401  (registers sgd)
from .base import OPTIMIZERS, Optimizer, per_run

__all__ = ["OPTIMIZERS", "Optimizer", "per_run"]
