"""Figures drawn from results (seaborn/matplotlib over the tidy tables): one module each,
registered in :data:`FIGURES`; a study names its figures under ``figures:`` (default: phase_plane).

Figure modules import matplotlib and seaborn inside their functions (via :func:`pyplot`), so that
validating a study or stepping a batch never pays for them."""

from ..discover import import_all
from .base import FIGURES

import_all(__name__, __path__)

__all__ = ["FIGURES"]
