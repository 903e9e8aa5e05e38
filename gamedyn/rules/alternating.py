"""Alternating gradient play, with k steps of each player per round."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..component import Param
from ..players import GAN, names, player, roles
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

    **Player names** (:mod:`gamedyn.players`). ``first`` is a player of the game (checked when a
    study is loaded, :meth:`unmet`): ``gen`` or ``disc`` in a GAN game, the game's own names
    otherwise (``p1``, ``p2`` on ``tandem``). ``gen_steps`` and ``disc_steps`` count the updates of
    the roles: in a two-player game named otherwise, its first and its second player. The default
    ``first: disc`` is the role too, so a round starts with the second player there, as it does with
    the discriminator in a GAN game; ``first: gen``/``disc`` is accepted on such a game as those
    roles. The players move in the roles' order (gen, disc; a game's own order otherwise) from
    ``first`` on; where no player takes the role ``first`` names (a one-player GAN game, a game of
    more than two players), in that order from its start.

    Cost: one gradient evaluation per scheduled update (``gen_steps + disc_steps`` per round; on a
    one-player game, that player's updates only).
    """

    @classmethod
    def work(cls, config):
        return config["gen_steps"] + config["disc_steps"]

    params = {
        "first": Param(str, "disc", "which player moves first in a round: one of the game's players "
                       "(gen or disc in a GAN game), or the role gen/disc (a two-player game's "
                       "first/second player)"),
        "gen_steps": Param(int, 1, "generator (first player's) updates per round", low=1),
        "disc_steps": Param(int, 1, "discriminator (second player's) updates per round", low=1),
    }

    @classmethod
    def unmet(cls, config: Mapping[str, Any], players: tuple[str, ...],
              optimizers: Mapping[str, type]) -> str | None:
        """``first`` must name a player of the game (:func:`gamedyn.players.names`) or a role
        (gen, disc; where no player takes it, a round follows the game's order)."""
        first = config.get("first", cls.params["first"].default)
        accepted = names(players)
        if first not in (*accepted, *GAN):
            roles_ = "" if accepted == GAN else " (or the roles gen, disc: the first, second player)"
            return (f"rule 'alternating': first {first!r} is not a player of the game; accepted: "
                    f"{', '.join(accepted)}{roles_}")
        return super().unmet(config, players, optimizers)

    def schedule(self, players: tuple[str, ...] = GAN) -> list[str]:
        """The updates of one round, in order, on a game with ``players``."""
        order = [p for p in names(players) if p in players]
        lead = player(self.first, players)
        if lead in order:
            i = order.index(lead)
            order = order[i:] + order[:i]
        cast = roles(players)
        counts = {cast.get("gen"): self.gen_steps, cast.get("disc"): self.disc_steps}
        return [p for p in order for _ in range(counts.get(p, 1))]

    def step(self, ctx, params, state):
        opt = state["opt"]
        # on a one-player game, only that player's updates
        moves = self.schedule(tuple(ctx.game.players))
        for player_ in moves:
            grads = ctx.grad(params, players=(player_,))
            params, opt = ctx.apply(grads, params, opt)
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=len(moves))}
