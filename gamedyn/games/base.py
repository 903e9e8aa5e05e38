"""The game interface: players with parameters over a run axis, and a loss per player per run."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..component import Component, Registry

Tensor = torch.Tensor
#: player -> parameter name -> tensor of shape ``[R, *shape]`` (R runs on the leading axis).
Params = dict[str, dict[str, Tensor]]

GAMES = Registry("game")


class Game(Component):
    """A two-player differentiable game over a run axis.

    Players are ``gen`` (the minimising side) and ``disc`` (the maximising side). Each *minimises its
    own loss*: for a zero-sum game with value L(gen, disc), ``loss_gen = L`` and ``loss_disc = -L``, so
    the simultaneous gradient field is ξ = (∇_gen loss_gen, ∇_disc loss_disc) and every update rule
    descends ξ. Losses have shape ``[R]``; runs are independent, so the gradient of
    ``loss.sum()`` is each run's own gradient.

    A subclass declares ``params`` (see :class:`gamedyn.component.Param`) and implements
    :meth:`shapes` and :meth:`losses`; it may give :meth:`equilibrium` (then distances to it are
    recorded and diagnosed).
    """

    players: ClassVar[tuple[str, ...]] = ("gen", "disc")

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """Each player's parameters and their per-run shapes (without the run axis)."""
        raise NotImplementedError

    def losses(self, params: Params) -> dict[str, Tensor]:
        """Each player's loss, a tensor of shape ``[R]``, at ``params``."""
        raise NotImplementedError

    def equilibrium(self) -> Params | None:
        """The equilibrium (per-run shapes, no run axis), or None when the game does not know one."""
        return None

    def zeros(self) -> Params:
        """All-zero parameters in per-run shapes (a helper for equilibria at the origin)."""
        return {
            player: {name: torch.zeros(shape, dtype=self.dtype, device=self.device)
                     for name, shape in named.items()}
            for player, named in self.shapes().items()
        }
