"""A separable potential game with four isolated minima: basins of attraction known by hand."""

from __future__ import annotations

from ..component import Param
from .base import GAMES, Tensor
from .scalar import ScalarPair


@GAMES.register("double_well")
class DoubleWell(ScalarPair):
    """Both players minimise one potential φ(x, y) = (x² − a²)²/4 + (y² − a²)²/4 (a potential game,
    Monderer & Shapley 1996, so the field is ∇φ and its Jacobian is symmetric, A = 0 in the
    decomposition of Balduzzi et al. 2018; ``gen`` owns x, ``disc`` owns y).

    The field ξ = (x³ − a²x, y³ − a²y) vanishes at the nine points with x, y ∈ {−a, 0, a}: four
    minima (±a, ±a) (Hessian 2a²·I), four saddles and the maximum at the origin. The game is
    separable, so gradient descent with rate η moves each coordinate by the 1-D map
    g(u) = u − η(u³ − a²u), increasing (order-preserving) where g′(u) = 1 + ηa² − 3ηu² > 0, i.e.
    |u| < √((1 + ηa²)/(3η)). There it maps (0, ∞) into itself and converges to a from any u > 0
    (g(u) > u below a, a < g(u) < u above it, wherever g(u) stays above 0), and symmetrically on the
    negative side; u = 0 is fixed. Hence the basin of the minimum (sᵤ a, s_v a) is the open
    quadrant of signs (sᵤ, s_v) of the start, the axes end on the saddles and the origin stays put
    (for η = 0.05, a = 1: starts in |u| < 2.64). :meth:`equilibrium` is None (there are several):
    the diagnosis follows the field's norm.
    """

    players = ("gen", "disc")
    params = {"a": Param(float, 1.0, "the minima's coordinates are ±a", low=0.0, low_open=True)}

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        a2 = self.a ** 2
        value = (x ** 2 - a2) ** 2 / 4 + (y ** 2 - a2) ** 2 / 4
        return value, value
