"""Figures drawn from results (seaborn/matplotlib over the tidy tables): one module each,
registered in :data:`FIGURES`; a study names its figures under ``figures:`` (default: phase_plane)."""

import matplotlib

matplotlib.use("Agg")

from ..discover import import_all  # noqa: E402
from .base import FIGURES  # noqa: E402

import_all(__name__, __path__)

__all__ = ["FIGURES"]
