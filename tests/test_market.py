"""The market games of Letcher (2021) against fields derived by hand and an independent root search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from gamedyn.games import GAMES
from gamedyn.rules import Context
from gamedyn.stability import field_jacobian

from .conftest import build

F64 = torch.float64


def hand_field(x, y, game: str, sigma: float = 0.01):
    """ξ = (∂L₁/∂x, ∂L₂/∂y) differentiated by hand (numpy): with g = y⁴/(1 + x²) − x⁴/(1 + y²),
    ∂ₓg = −2xy⁴/(1 + x²)² − 4x³/(1 + y²), ∂ᵧg = 4y³/(1 + x²) + 2x⁴y/(1 + y²)²; market:
    ξ = (y − x + x⁵ + ∂ₓg/4, −x − y + y⁵ − ∂ᵧg/4); market_with_min: ξ = (x⁵ − 2x + ∂ₓf + y + ∂ₓg/4,
    y⁵ − ∂ᵧf − x − ∂ᵧg/4) with ∇f = (x, y) outside the disc r < σ and, inside, f = q(r² − σ²)/(2σ²),
    q = y² − 3x²: ∂ₓf = (−6x(r² − σ²) + 2xq)/(2σ²), ∂ᵧf = (2y(r² − σ²) + 2yq)/(2σ²)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    gx = -2 * x * y ** 4 / (1 + x ** 2) ** 2 - 4 * x ** 3 / (1 + y ** 2)
    gy = 4 * y ** 3 / (1 + x ** 2) + 2 * x ** 4 * y / (1 + y ** 2) ** 2
    if game == "market":
        return np.stack([y - x + x ** 5 + gx / 4, -x - y + y ** 5 - gy / 4], -1)
    s2, r2, q = sigma ** 2, x ** 2 + y ** 2, y ** 2 - 3 * x ** 2
    inside = r2 < s2
    fx = np.where(inside, (-6 * x * (r2 - s2) + 2 * x * q) / (2 * s2), x)
    fy = np.where(inside, (2 * y * (r2 - s2) + 2 * y * q) / (2 * s2), y)
    return np.stack([x ** 5 - 2 * x + fx + y + gx / 4, y ** 5 - fy - x - gy / 4], -1)


def field(game, x, y):
    params = {"p1": {"x": torch.tensor(x, dtype=F64)}, "p2": {"y": torch.tensor(y, dtype=F64)}}
    xi = Context(game, {}).grad(params)
    return np.stack([xi["p1"]["x"].numpy(), xi["p2"]["y"].numpy()], -1)


@pytest.mark.parametrize("name", ["market", "market_with_min"])
def test_the_field_is_the_hand_derived_one(name):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 200)) * 1.5
    x[:50], y[:50] = x[:50] * 0.004, y[:50] * 0.004             # inside the disc of radius 0.01
    sigma = [0.01] * 100 + [0.05] * 100                          # per-run σ: structural, one batch each
    for part in (slice(0, 100), slice(100, 200)):
        cfg = {} if name == "market" else {"sigma": sigma[part.start]}
        game = build(GAMES, name, [cfg] * 100)
        np.testing.assert_allclose(field(game, x[part], y[part]),
                                   hand_field(x[part], y[part], name, sigma[part.start]),
                                   rtol=1e-12, atol=1e-14)


def test_the_origin_is_the_only_critical_point_in_the_box():
    """Root-finder starts on a 31 × 31 grid over [−3, 3]² (and, for market_with_min, 21 × 21 inside
    the disc): every root found to 1e-10 is the origin."""
    for name, box in (("market", 3.0), ("market_with_min", 3.0), ("market_with_min", 0.01)):
        roots = set()
        n = 31 if box > 1 else 21
        for a in np.linspace(-box, box, n):
            for b in np.linspace(-box, box, n):
                r = scipy.optimize.root(lambda z, g=name: hand_field(z[0], z[1], g), [a, b], tol=1e-14)
                if r.success and np.abs(hand_field(*r.x, name)).max() < 1e-10:
                    roots.add(tuple(np.round(r.x, 6) + 0.0))
        assert roots == {(0.0, 0.0)}, (name, box, roots)


def test_the_origin_repels_in_market_and_is_a_strict_local_nash_point_with_min():
    """H = [[−1, 1], [−1, −1]] (eigenvalues −1 ± i: each player at a local maximum of its loss)
    for market; [[1, 1], [−1, 1]] (1 ± i, local minima) for market_with_min."""
    want = {"market": [[-1.0, 1.0], [-1.0, -1.0]], "market_with_min": [[1.0, 1.0], [-1.0, 1.0]]}
    for name, H in want.items():
        game = build(GAMES, name, [{}])
        np.testing.assert_allclose(field_jacobian(game)[0].numpy(), H, atol=1e-12)


def test_outside_the_disc_the_games_share_their_field_and_f_is_continuous_on_the_circle():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 64))
    market, with_min = (build(GAMES, n, [{}] * 64) for n in ("market", "market_with_min"))
    np.testing.assert_allclose(field(market, x, y), field(with_min, x, y), rtol=1e-12, atol=1e-13)
    t = np.linspace(0, 2 * np.pi, 64)
    game = build(GAMES, "market_with_min", [{}] * 64)
    for r in (0.01 * (1 - 1e-9), 0.01 * (1 + 1e-9)):     # L₁ just inside and just outside
        xs, ys = r * np.cos(t), r * np.sin(t)
        losses = game.losses({"p1": {"x": torch.tensor(xs)}, "p2": {"y": torch.tensor(ys)}})
        if r < 0.01:
            inside = losses["p1"].numpy()
        else:
            np.testing.assert_allclose(losses["p1"].numpy(), inside, atol=1e-10)
