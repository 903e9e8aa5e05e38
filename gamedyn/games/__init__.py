"""Games: each module one game, registered in :data:`GAMES` by name."""

from . import bilinear, dirac  # noqa: F401  (registers the games)
from .base import GAMES, Game, Params

__all__ = ["GAMES", "Game", "Params"]
