"""Context: field Jacobian products against the hand-derived Jacobian of each game."""

import numpy as np
import pytest
import torch

from gamedyn.games import GAMES
from gamedyn.rules import Context


def _flat(p):
    return np.concatenate([p["gen"][k].reshape(p["gen"][k].shape[0], -1).numpy() for k in p["gen"]]
                          + [p["disc"][k].reshape(p["disc"][k].shape[0], -1).numpy() for k in p["disc"]], 1)


def test_field_products_on_bilinear_match_the_block_jacobian():
    cls = GAMES.get("bilinear")
    game = cls.build([cls.resolve({"dim": 3, "A": "random", "A_seed": 2}, "g")], torch.float64)
    A = game.matrix.numpy()
    J = np.block([[np.zeros((3, 3)), A], [-A.T, np.zeros((3, 3))]])  # ξ = (Ay, −Aᵀx)
    g = torch.Generator().manual_seed(0)
    p = {"gen": {"x": torch.randn(4, 3, generator=g, dtype=torch.float64)},
         "disc": {"y": torch.randn(4, 3, generator=g, dtype=torch.float64)}}
    v = {"gen": {"x": torch.randn(4, 3, generator=g, dtype=torch.float64)},
         "disc": {"y": torch.randn(4, 3, generator=g, dtype=torch.float64)}}
    ctx = Context(game, {})
    np.testing.assert_allclose(_flat(ctx.field_vjp(p, v)), _flat(v) @ J, atol=1e-14)
    np.testing.assert_allclose(_flat(ctx.field_jvp(p, v)), _flat(v) @ J.T, atol=1e-14)


@pytest.mark.parametrize("loss", ["gan", "wgan"])
def test_field_jacobian_of_dirac_at_the_equilibrium(loss):
    """At (0, 0): ξ = (ψ f′(0), −θ f′(0)), so J = [[0, f′(0)], [−f′(0), 0]], f′(0) = ½ (gan) or 1."""
    cls = GAMES.get("dirac")
    game = cls.build([cls.resolve({"loss": loss}, "g")], torch.float64)
    fp = 0.5 if loss == "gan" else 1.0
    J = np.array([[0.0, fp], [-fp, 0.0]])
    zero = {"gen": {"theta": torch.zeros(2, dtype=torch.float64)},
            "disc": {"psi": torch.zeros(2, dtype=torch.float64)}}
    v = {"gen": {"theta": torch.tensor([1.0, 0.3], dtype=torch.float64)},
         "disc": {"psi": torch.tensor([-2.0, 0.7], dtype=torch.float64)}}
    ctx = Context(game, {})
    np.testing.assert_allclose(_flat(ctx.field_jvp(zero, v)), _flat(v) @ J.T, atol=1e-14)
    np.testing.assert_allclose(_flat(ctx.field_vjp(zero, v)), _flat(v) @ J, atol=1e-14)
