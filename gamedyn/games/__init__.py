"""Games: one module each, registered in :data:`GAMES` by name (every module here is imported)."""

from ..discover import import_all
from .base import GAMES, Game, Params

import_all(__name__, __path__)

__all__ = ["GAMES", "Game", "Params"]
