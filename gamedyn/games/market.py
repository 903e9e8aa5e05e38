"""The market games of Letcher (2021): general-sum games whose every start ends on a cycle."""

from __future__ import annotations

import torch

from ..component import Param
from .base import GAMES, Params, Tensor
from .scalar import ScalarPair


def _coupling(x: Tensor, y: Tensor) -> Tensor:
    """g(x, y) = y⁴/(1 + x²) − x⁴/(1 + y²), the term both market games share."""
    return y ** 4 / (1 + x ** 2) - x ** 4 / (1 + y ** 2)


@GAMES.register("market")
class Market(ScalarPair):
    """L₁ = xy − x²/2 + x⁶/6 + g/4, L₂ = −xy − y²/2 + y⁶/6 − g/4: one critical point, repelling.

    The game ``market`` of the notebook of Letcher 2021, "On the Impossibility of Global
    Convergence in Multi-Loss Optimization" (ICLR 2021, arXiv 2005.12649;
    ``aletcher/impossibility-global-convergence``), with g = y⁴/(1 + x²) − x⁴/(1 + y²)::

        L₁(x, y) = xy − x²/2 + x⁶/6 + g/4    (player ``p1``, parameter x)
        L₂(x, y) = −xy − y²/2 + y⁶/6 − g/4   (player ``p2``, parameter y)

    It is general-sum (L₁ + L₂ = (x⁶ + y⁶)/6 − (x² + y²)/2) and each loss grows as the sixth power
    of its player's own parameter, so no player runs off to infinity. The field is
    ξ = (y − x + x⁵ + ¼∂ₓg, −x − y + y⁵ − ¼∂ᵧg) with ∂ₓg = −2xy⁴/(1 + x²)² − 4x³/(1 + y²) and
    ∂ᵧg = 4y³/(1 + x²) + 2x⁴y/(1 + y²)². At the origin ξ = 0 and H = [[−1, 1], [−1, −1]]
    (eigenvalues −1 ± i): each player sits at a strict local *maximum* of its own loss, and the
    point repels gradient play. It is the only critical point that ``tests/test_market.py`` finds
    in [−3, 3]² (from a grid of 31² root-finder starts). The notebook's setting: α = 0.02,
    3000 steps, θ ~ N(0, 1). :meth:`equilibrium` is the critical point (the origin).
    """

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        g = _coupling(x, y)
        return (x * y - x ** 2 / 2 + x ** 6 / 6 + g / 4,
                -x * y - y ** 2 / 2 + y ** 6 / 6 - g / 4)

    def equilibrium(self) -> Params:
        return self.zeros()


@GAMES.register("market_with_min")
class MarketWithMin(ScalarPair):
    """The market game with a strict local Nash equilibrium at the origin, in a disc of radius σ.

    Attracting, but with a tiny basin.

    The game ``market_with_min`` of the notebook of Letcher 2021 (arXiv 2005.12649), with g as in
    :class:`Market` and r² = x² + y²::

        f = (r² − σ²)/2                         where r ≥ σ
        f = (y² − 3x²)(r² − σ²)/(2σ²)           where r < σ
        L₁(x, y) = x⁶/6 − x² + f + xy + g/4,    L₂(x, y) = y⁶/6 − f − xy − g/4

    Outside the disc, L₁ differs from :class:`Market`'s by y²/2 − σ²/2 (no x in it) and L₂ is
    market's L₂ + σ²/2: the same field. Inside, f ≈ (3x² − y²)/2 to second order, so near the
    origin L₁ ≈ x²/2 + xy and L₂ ≈ y²/2 − xy: each player is at a strict local *minimum* of its
    own loss, H = [[1, 1], [−1, 1]] (eigenvalues 1 ± i) attracts gradient play with small steps,
    and the origin is a strict local Nash equilibrium. f is continuous on the circle r = σ but its
    gradient jumps there (∂ₓf = x outside, x(y² − 3x²)/σ² inside), as the notebook defines it. The
    notebook's σ = 0.01 (``sigma``). :meth:`equilibrium` is the origin.
    """

    params = {"sigma": Param(float, 0.01, "σ, the radius of the disc around the local minimum",
                             low=0.0, low_open=True)}

    def pair(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        s2 = self.sigma ** 2
        r2 = x ** 2 + y ** 2
        inside = r2 < s2
        outer = (r2 - s2) / 2
        inner = (y ** 2 - 3 * x ** 2) * (r2 - s2) / (2 * s2)
        f = torch.where(inside, inner, outer)
        g = _coupling(x, y)
        return x ** 6 / 6 - x ** 2 + f + x * y + g / 4, y ** 6 / 6 - f - x * y - g / 4

    def equilibrium(self) -> Params:
        return self.zeros()
