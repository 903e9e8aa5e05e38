"""Instance noise: Gaussian noise added to real and generated samples."""

from __future__ import annotations

from ..component import Param
from ..costs import gauss_hermite
from .base import REGULARIZERS, Regularizer, n_runs


@REGULARIZERS.register("instance_noise")
class InstanceNoise(Regularizer):
    """Instance noise (Sønderby et al. 2017, arXiv 1610.04490; analysed on the Dirac-GAN by Mescheder,
    Geiger & Nowozin 2018, arXiv 1801.04406, §3.1): both players' losses are the game's objective
    on x + σε for real and generated samples, ε ~ N(0, I).

    The expectation over ε is taken exactly up to Gauss–Hermite quadrature of order ``nodes`` per data
    dimension (the tensor grid of :func:`gamedyn.costs.gauss_hermite`, nodes^d points, so this is for
    low-dimensional data), so the field is the expected field, without Monte Carlo noise. On the
    Dirac-GAN with the gan loss this makes the equilibrium locally attractive.
    """

    needs_samples = True
    params = {
        "sigma": Param(float, 1.0, "noise standard deviation σ", low=0.0, per_run=True),
        "nodes": Param(int, 20, "Gauss–Hermite nodes per data dimension", low=1),
    }

    def losses(self, game, params):
        R = n_runs(params)
        real, fake = game.real_samples(R), game.fake_samples(params)
        eps, w_eps = gauss_hermite(self.nodes, dim=real[0].shape[-1], dtype=game.dtype,
                                   device=game.device)
        sigma = self.sigma[:, None, None, None]

        def noisy(samples):
            x, w = samples                                   # [R, n, d], [R, n]
            xn = x[:, :, None, :] + sigma * eps[None, None]  # [R, n, m, d]
            wn = w[:, :, None] * w_eps[None, None]           # [R, n, m]
            return xn.reshape(R, -1, x.shape[-1]), wn.reshape(R, -1)

        return game.objective(params, noisy(real), noisy(fake))
