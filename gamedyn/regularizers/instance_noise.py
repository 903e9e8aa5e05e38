"""Instance noise: Gaussian noise added to real and generated samples."""

from __future__ import annotations

import math

from ..component import Param
from ..costs import gauss_hermite
from .base import REGULARIZERS, Regularizer, n_runs


@REGULARIZERS.register("instance_noise")
class InstanceNoise(Regularizer):
    """Instance noise (Sønderby et al. 2017, arXiv 1610.04490; analysed on the Dirac-GAN by Mescheder,
    Geiger & Nowozin 2018, arXiv 1801.04406, §3.1): both players' losses are the game's objective
    on x + σε for real and generated samples, ε ~ N(0, I).

    For low-dimensional data (nodes^d ≤ ``max_grid``) the expectation over ε is taken exactly up to
    Gauss–Hermite quadrature of order ``nodes`` per data dimension (the tensor grid of
    :func:`gamedyn.costs.gauss_hermite`, nodes^d points), so the field is the expected field, without
    Monte Carlo noise. On the Dirac-GAN with the gan loss this makes the equilibrium locally
    attractive. Above that (images: d = 64 for digits, where the grid cannot even be built), it is a
    Monte Carlo average over ``mc_samples`` draws ε_{ij} ~ N(0, I_d) per sample i, each weighted
    w_i / ``mc_samples``: an unbiased estimate of the same expectation, drawn from each run's own
    stream (``game.rng``, :meth:`gamedyn.random.Streams.fast_normal`), so the run-axis invariant and
    the rules' replay of a step's draws hold.
    """

    needs_samples = True
    params = {
        "sigma": Param(float, 1.0, "noise standard deviation σ", low=0.0, per_run=True),
        "nodes": Param(int, 20, "Gauss–Hermite nodes per data dimension", low=1),
        "max_grid": Param(int, 100_000, "quadrature while nodes^dim ≤ this; Monte Carlo above", low=1),
        "mc_samples": Param(int, 8, "Monte Carlo: noise draws per sample", low=1),
    }

    def losses(self, game, params):
        R = n_runs(params)
        real, fake = game.real_samples(R), game.fake_samples(params)
        d = real[0].shape[-1]
        quadrature = d * math.log(self.nodes) <= math.log(self.max_grid)
        if quadrature:
            eps, w_eps = gauss_hermite(self.nodes, dim=d, dtype=game.dtype, device=game.device)
        sigma = self.sigma[:, None, None, None]

        def noisy(samples):
            x, w = samples                                   # [R, n, d], [R, n]
            if quadrature:
                xn = x[:, :, None, :] + sigma * eps[None, None]  # [R, n, m, d]
                wn = w[:, :, None] * w_eps[None, None]           # [R, n, m]
            else:
                m = self.mc_samples
                e = game.rng.fast_normal(x.shape[1] * m, d, dtype=game.dtype)
                xn = x[:, :, None, :] + sigma * e.reshape(R, x.shape[1], m, d)
                wn = (w / m)[:, :, None].expand(-1, -1, m)
            return xn.reshape(R, -1, d), wn.reshape(R, -1)

        return game.objective(params, noisy(real), noisy(fake))
