"""The tandem game of Letcher et al. (2019): a general-sum game with a line of fixed points."""

from __future__ import annotations

from .base import GAMES, Tensor
from .scalar import ScalarPair


@GAMES.register("tandem")
class Tandem(ScalarPair):
    """Tandem: L₁ = (x + y)² − 2x, L₂ = (x + y)² − 2y, a line of fixed points x + y = 1.

    Letcher, Foerster, Balduzzi, Rocktäschel & Whiteson 2019, "Stable
    Opponent Shaping in Differentiable Games", ICLR 2019, arXiv 1811.08469, §5)::

        L₁(x, y) = (x + y)² − 2x,    L₂(x, y) = (x + y)² − 2y

    Player 1 (``p1``, parameter x) minimises L₁, player 2 (``p2``, parameter y) minimises L₂. The
    field is
    ξ = (2(x + y) − 2, 2(x + y) − 2): every point of the line x + y = 1 is a fixed point (and a
    Nash equilibrium: each Lᵢ is convex in the player's own parameter), H = ∇ξ = [[2, 2], [2, 2]]
    is singular everywhere. The papers' setting: α = 0.1, θ ~ N(0, 0.1²).

    The equilibrium is a set, not a point, so :meth:`equilibrium` is None: the recorder's
    diagnosis signal is then the norm of the field, ‖ξ‖ = 2√2·|x + y − 1| = 4·d, exactly four
    times the distance d = |x + y − 1|/√2 to the line.
    """

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        s = (x + y) ** 2
        return s - 2 * x, s - 2 * y
