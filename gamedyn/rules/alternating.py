"""Alternating gradient play, with k steps of each player per round."""

from __future__ import annotations

from ..component import Param
from .base import RULES, Rule, count


@RULES.register("alternating")
class Alternating(Rule):
    """Alternating gradient play: the players take turns, each seeing the other's latest move.

    One step is one round: ``first`` takes its scheduled number of updates, then the other player.
    With gen first and SGD on xᵀy: x_{k+1} = x_k − η y_k, y_{k+1} = y_k + η x_{k+1}; the iteration
    matrix [[1, −η], [η, 1 − η²]] has determinant 1 and, for 0 < η < 2, eigenvalues e^{±iω} with
    cos ω = 1 − η²/2, so the orbit is bounded and x² − ηxy + y² is conserved (period 2π/ω steps).
    ``disc_steps: 5`` gives the k discriminator steps per generator step of GAN training
    (Goodfellow et al. 2014, Alg. 1), each step a fresh gradient at the current point.

    Cost: one gradient evaluation per scheduled update (``gen_steps + disc_steps`` per round; on a
    one-player game, that player's updates only).
    """

    @classmethod
    def work(cls, config):
        return config["gen_steps"] + config["disc_steps"]

    params = {
        "first": Param(str, "disc", "which player moves first in a round", choices=("gen", "disc")),
        "gen_steps": Param(int, 1, "generator updates per round", low=1),
        "disc_steps": Param(int, 1, "discriminator updates per round", low=1),
    }

    def schedule(self) -> list[str]:
        order = ["gen", "disc"] if self.first == "gen" else ["disc", "gen"]
        counts = {"gen": self.gen_steps, "disc": self.disc_steps}
        return [player for player in order for _ in range(counts[player])]

    def step(self, ctx, params, state):
        opt = state["opt"]
        # on a one-player game, only that player's updates
        moves = [player for player in self.schedule() if player in ctx.game.players]
        for player in moves:
            grads = ctx.grad(params, players=(player,))
            params, opt = ctx.apply(grads, params, opt)
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=len(moves))}
