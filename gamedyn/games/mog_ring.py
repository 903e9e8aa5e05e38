"""Eight Gaussians on a ring: the mode-collapse benchmark of the unrolled-GAN paper."""

from __future__ import annotations

from ..component import Param
from .base import GAMES
from .mixture import MixtureGame, net_params, ring_means


@GAMES.register("mog_ring")
class MogRing(MixtureGame):
    """A GAN on K Gaussians on a ring (Metz et al. 2017, arXiv 1611.02163, §3.1, App. A), MLP players.

    p_d = (1/K) Σ_k N(μ_k, σ² I₂), μ_k = r (cos 2πk/K, sin 2πk/K), k = 0…K−1 — all K distinct (the
    widely copied ``linspace(0, 2π, 8)`` makes modes 0 and 7 coincide). Defaults K = 8, r = 2,
    σ = 0.02 (the unrolled-GAN setup, as reproduced by ``locuslab/gradient_regularized_gan``).
    Players, objectives, metrics and labels: :mod:`gamedyn.games.mixture`.
    """

    dim = 2
    params = net_params(
        modes=Param(int, 8, "number of modes K", low=1),
        radius=Param(float, 2.0, "ring radius r", low=0.0, low_open=True),
        sigma=Param(float, 0.02, "standard deviation σ of each mode", low=0.0, low_open=True),
    )

    def means(self):
        return ring_means(self.modes, self.radius)
