"""The quartic zero-sum game of Letcher (2021), whose only critical point repels."""

from __future__ import annotations

from .base import GAMES, Params, Tensor
from .scalar import ScalarPair


@GAMES.register("zerosum_quartic")
class ZerosumQuartic(ScalarPair):
    """L = xy − x²/2 + y²/2 + x⁴/4 − y⁴/4, zero-sum: its only critical point repels.

    Letcher 2021, "On the Impossibility of Global Convergence in Multi-Loss Optimization"
    (ICLR 2021, arXiv 2005.12649)::

        L(x, y) = xy − x²/2 + y²/2 + x⁴/4 − y⁴/4,    L₁ = L (x, ``p1``),  L₂ = −L (y, ``p2``)

    The field is ξ = (y − x + x³, −x − y + y³). Its only zero is the origin: ξ₁ = 0 gives
    y = x − x³, and then ξ₂ = 0 reads 2x − x³ − (x − x³)³ = 0, whose only real root is 0 (the left
    side is odd and positive for x > 0). There H = [[−1, 1], [−1, −1]] with eigenvalues −1 ± i: each
    player sits at a strict local *maximum* of its own loss (∂²L₁/∂x² = ∂²L₂/∂y² = −1), the point
    repels gradient play, and the papers' algorithms end on a cycle around it. The papers' setting:
    α = 0.01, 3000 steps, θ ~ N(0, 1). :meth:`equilibrium` is the critical point (the origin), so
    the recorded distance is to it and the stability analysis linearises there.
    """

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        value = x * y - x ** 2 / 2 + y ** 2 / 2 + x ** 4 / 4 - y ** 4 / 4
        return value, -value

    def equilibrium(self) -> Params:
        return self.zeros()
