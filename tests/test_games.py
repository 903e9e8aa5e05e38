"""Each game's field against its hand-derived closed form."""

import numpy as np
import pytest
import torch

from gamedyn.games import GAMES
from gamedyn.rules import Context


def build(name, **params):
    cls = GAMES.get(name)
    return cls.build([cls.resolve(params, "game")], torch.float64)


def test_bilinear_field_is_Ay_and_minus_ATx():
    game = build("bilinear", dim=3, A="random", A_seed=7)
    R = 5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(R, 3, generator=g, dtype=torch.float64)
    y = torch.randn(R, 3, generator=g, dtype=torch.float64)
    params = {"gen": {"x": x}, "disc": {"y": y}}
    losses = game.losses(params)
    assert losses["gen"].shape == (R,) and losses["disc"].shape == (R,)
    grads = Context(game, {}).grad(params)
    M = game.matrix.numpy()
    assert not np.allclose(M, np.eye(3))
    np.testing.assert_allclose(grads["gen"]["x"].numpy(), y.numpy() @ M.T, rtol=1e-12)
    np.testing.assert_allclose(grads["disc"]["y"].numpy(), -x.numpy() @ M, rtol=1e-12)
    np.testing.assert_allclose(losses["gen"].numpy(), np.einsum("ri,ij,rj->r", x, M, y), rtol=1e-12)


def test_bilinear_random_matrix_depends_only_on_its_seed():
    a = build("bilinear", dim=4, A="random", A_seed=3).matrix
    b = build("bilinear", dim=4, A="random", A_seed=3).matrix
    c = build("bilinear", dim=4, A="random", A_seed=4).matrix
    assert torch.equal(a, b) and not torch.equal(a, c)


def _fprime(loss, t):
    """f'(t) for f(t) = -log(1 + e^{-t}) (gan, nsgan): σ(-t) = 1 / (1 + e^{t}); for wgan f(t) = t."""
    return np.ones_like(t) if loss == "wgan" else 1.0 / (1.0 + np.exp(t))


@pytest.mark.parametrize("loss", ["gan", "nsgan", "wgan"])
def test_dirac_field_matches_mescheder_et_al(loss):
    game = build("dirac", loss=loss)
    rng = np.random.default_rng(0)
    theta, psi = rng.normal(size=7) * 2, rng.normal(size=7) * 2
    params = {"gen": {"theta": torch.tensor(theta)}, "disc": {"psi": torch.tensor(psi)}}
    grads = Context(game, {}).grad(params)
    # θ̇ = −ψ f′(ψθ) (gan, wgan) or −ψ f′(−ψθ) (nsgan); ψ̇ = θ f′(ψθ). Gradients are minus these.
    t = psi * theta
    theta_dot = -psi * _fprime(loss, -t if loss == "nsgan" else t)
    psi_dot = theta * _fprime(loss, t)
    np.testing.assert_allclose(grads["gen"]["theta"].numpy(), -theta_dot, rtol=1e-12)
    np.testing.assert_allclose(grads["disc"]["psi"].numpy(), -psi_dot, rtol=1e-12)


@pytest.mark.parametrize("loss", ["gan", "nsgan", "wgan"])
def test_dirac_field_vanishes_at_equilibrium(loss):
    game = build("dirac", loss=loss)
    zero = {"gen": {"theta": torch.zeros(3, dtype=torch.float64)},
            "disc": {"psi": torch.zeros(3, dtype=torch.float64)}}
    grads = Context(game, {}).grad(zero)
    assert float(grads["gen"]["theta"].abs().max()) == 0.0
    assert float(grads["disc"]["psi"].abs().max()) == 0.0


def test_dirac_value_at_equilibrium_is_2f0():
    game = build("dirac", loss="gan")
    zero = {"gen": {"theta": torch.zeros(1, dtype=torch.float64)},
            "disc": {"psi": torch.zeros(1, dtype=torch.float64)}}
    # L(0, 0) = 2 f(0) = -2 log 2; the discriminator's loss is -L.
    assert float(game.losses(zero)["disc"][0]) == pytest.approx(2 * np.log(2), rel=1e-14)
