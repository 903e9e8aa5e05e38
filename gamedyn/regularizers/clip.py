"""WGAN weight clipping."""

from __future__ import annotations

import torch

from ..component import Param
from ..optim.base import per_run
from .base import REGULARIZERS, Regularizer


@REGULARIZERS.register("clip")
class Clip(Regularizer):
    """Weight clipping (Arjovsky, Chintala & Bottou 2017, arXiv 1701.07875): after each of its moves,
    every discriminator parameter is clamped to [−c, c]. On the Dirac-GAN: ψ ∈ [−c, c]."""

    params = {"c": Param(float, 0.01, "clipping bound c", low=0.0, low_open=True, per_run=True)}
    changes_losses = False

    def project(self, player, params):
        if player != "disc":
            return params
        return {k: torch.minimum(torch.maximum(v, -per_run(self.c, v)), per_run(self.c, v))
                for k, v in params.items()}
