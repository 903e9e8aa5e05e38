"""The gradient-norm regularizer of Nagarajan & Kolter (2017)."""

from __future__ import annotations

import torch

from ..component import Param
from .base import REGULARIZERS, Regularizer


@REGULARIZERS.register("gradient_norm")
class GradientNorm(Regularizer):
    """Nagarajan & Kolter (2017, arXiv 1706.04156, §5): the generator descends
    V + η‖∇_{θ_D} V‖², V the game's value (here ∇_{θ_D} V = −∇_disc L_disc), differentiating the
    penalty through the discriminator's gradient. The discriminator's loss is unchanged. Their code
    uses η = 0.5 on the 8-Gaussian ring. Works on any game (it needs no data samples).
    """

    params = {"eta": Param(float, 0.5, "penalty weight η", low=0.0, per_run=True)}

    def penalty(self, game, params):
        loss_disc = game.losses(params)["disc"].sum()
        grads = torch.autograd.grad(loss_disc, list(params["disc"].values()), create_graph=True)
        n_runs = grads[0].shape[0]
        sq = sum((g.reshape(n_runs, -1) ** 2).sum(1) for g in grads)
        return {"gen": self.eta * sq}
