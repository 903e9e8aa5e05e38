"""WGAN-GP: the gradient penalty of Gulrajani et al. (2017)."""

from __future__ import annotations

import numpy as np
import torch

from ..component import Param
from .base import REGULARIZERS, Regularizer, input_grad_sq, n_runs

_EPS = 1e-12


@REGULARIZERS.register("wgan_gp")
class WGANGP(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017, arXiv 1704.00028): the discriminator's loss gains
    λ E_{ε~U[0,1]} Σ_i w_i (‖∇_x D(x̂_i)‖ − target)², x̂_i = ε x_i^real + (1 − ε) x_i^fake, pairing the
    i-th real and generated samples (equal counts required). The expectation over ε uses
    Gauss–Legendre quadrature of order ``nodes`` (exact for the Dirac-GAN, whose D is linear).
    ‖·‖ is computed as √(‖·‖² + 10⁻¹²) so that its gradient is defined where ∇_x D = 0.
    On the Dirac-GAN the penalty is λ(|ψ| − target)²: it pulls |ψ| to the target, away from the
    equilibrium ψ = 0 (Mescheder et al. 2018 show WGAN-GP need not converge there).
    """

    needs_samples = True
    params = {
        "lam": Param(float, 10.0, "penalty weight λ", low=0.0, per_run=True),
        "target": Param(float, 1.0, "target gradient norm", low=0.0),
        "nodes": Param(int, 4, "Gauss–Legendre nodes for ε", low=1),
    }

    def penalty(self, game, params):
        R = n_runs(params)
        (xr, wr), (xf, _) = game.real_samples(R), game.fake_samples(params)
        if xr.shape[1] != xf.shape[1]:
            raise ValueError(f"wgan_gp pairs real and generated samples: got {xr.shape[1]} real and "
                             f"{xf.shape[1]} generated")
        t, w = np.polynomial.legendre.leggauss(self.nodes)
        eps = torch.as_tensor((t + 1) / 2, dtype=xr.dtype, device=xr.device)     # nodes on [0, 1]
        w = torch.as_tensor(w / 2, dtype=xr.dtype, device=xr.device)
        e = eps[None, None, :, None]
        xhat = e * xr[:, :, None] + (1 - e) * xf.detach()[:, :, None]                 # [R, n, m, d]
        sq = input_grad_sq(game, params, xhat.reshape(R, -1, xr.shape[-1]))
        gap = (torch.sqrt(sq + _EPS) - self.target) ** 2                         # [R, n·m]
        per_sample = (gap.reshape(R, xr.shape[1], -1) * w).sum(-1)          # [R, n]
        return {"disc": self.lam * (wr * per_sample).sum(1)}
