"""The regularizer interface: what may modify the players' losses or constrain their parameters."""

from __future__ import annotations

from typing import ClassVar

import torch

from .. import tree
from ..component import Component, Registry
from ..games.base import Game, Params, SampleGame, Tensor

REGULARIZERS = Registry("regularizer")


class Regularizer(Component):
    """Modifies a game for every rule alike (a study's ``regularizer:`` key; one per run).

    ``losses(game, params)`` gives the players' losses as every rule sees them (through
    :meth:`gamedyn.rules.Context.losses`): by default the game's losses plus :meth:`penalty`.
    ``project(player, params)`` constrains a player's parameters after each of its moves (through
    :meth:`gamedyn.rules.Context.apply`), e.g. WGAN weight clipping. Regularizers that act on data
    samples set ``needs_samples`` and work on :class:`gamedyn.games.base.SampleGame` games.
    All penalties are per run (shape ``[R]``) and differentiable (they may be differentiated again).
    """

    needs_samples: ClassVar[bool] = False
    needs_disc: ClassVar[bool] = True
    #: whether :meth:`losses` differs from the game's (a penalty); False for one that only projects
    changes_losses: ClassVar[bool] = True

    def losses(self, game: Game, params: Params) -> dict[str, Tensor]:
        base = game.losses(params)
        extra = self.penalty(game, params)
        return {p: base[p] + extra[p] if p in extra else base[p] for p in base}

    def penalty(self, game: Game, params: Params) -> dict[str, Tensor]:
        return {}

    def derivatives(self, game: Game, params: Params) -> dict[str, tuple[Tensor, Tensor]] | None:
        """The penalty's gradient ``[R, m]`` and Hessian ``[R, m, m]`` in each penalised player's own
        m (flat) parameters, in closed form, or None (the default: autograd). A penalty that
        depends on its player's parameters only may give it; :class:`gamedyn.rules.Context` then
        adds it to the game's closed forms (:meth:`Game.gradients`, :meth:`Game.hessians`)."""
        return None

    def project(self, player: str, params: dict[str, Tensor]) -> dict[str, Tensor]:
        return params


@REGULARIZERS.register("none")
class NoRegularizer(Regularizer):
    """No regularization: the game as it is."""

    params = {}
    needs_disc = False
    changes_losses = False


def n_runs(params: Params) -> int:
    """R, the length of the run axis, from any player's parameters."""
    return tree.n_runs(params)


def input_grad_sq(game: SampleGame, params: Params, x: Tensor) -> Tensor:
    """‖∇_x D(x)‖² for each sample of ``x`` [R, n, d] → [R, n], differentiable in the
    discriminator's parameters (samples are treated as data: no gradient flows into ``x``'s source)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(game.disc_logit(params, x).sum(), x, create_graph=True)
    return (g * g).sum(-1)
