"""Two players with one scalar parameter each: the shape the small games of the literature share."""

from __future__ import annotations

from typing import ClassVar

from .base import Game, Params, Tensor


class ScalarPair(Game):
    """Player 1 owns the scalar x, player 2 the scalar y, and each minimises its own loss of both.

    A subclass names its players (``players``, default ``p1``, ``p2``) and their parameters
    (``coordinates``, default ``x``, ``y``) and gives :meth:`pair`, the two losses as functions of
    x and y, each ``[R]``. The runs' x and y are tensors ``[R]``.
    """

    players: ClassVar[tuple[str, ...]] = ("p1", "p2")
    coordinates: ClassVar[tuple[str, str]] = ("x", "y")
    params = {}

    @classmethod
    def roster(cls) -> str:
        return ", ".join(f"{p} ({c})" for p, c in zip(cls.players, cls.coordinates))

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {p: {c: ()} for p, c in zip(self.players, self.coordinates)}

    def losses(self, params: Params) -> dict[str, Tensor]:
        (p, q), (a, b) = self.players, self.coordinates
        return dict(zip(self.players, self.pair(params[p][a], params[q][b])))

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(L₁, L₂) at (x, y)."""
        raise NotImplementedError
