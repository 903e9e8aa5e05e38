"""Twenty-five Gaussians on a 5 × 5 grid."""

from __future__ import annotations

import numpy as np

from ..component import Param
from .base import GAMES
from .mixture import MixtureGame, net_params


@GAMES.register("mog_grid")
class MogGrid(MixtureGame):
    """A GAN on a grid of n × n Gaussians (VEEGAN, Srivastava et al. 2017, arXiv 1705.07761, §5.1;
    PacGAN, Lin et al. 2018, arXiv 1712.04086), MLP players.

    Means {−(n−1)/2, …, (n−1)/2}² × ``spacing``: with the defaults n = 5, spacing 2, the means are
    {−4, −2, 0, 2, 4}², σ = 0.05, K = 25 equally weighted modes. Players, objectives, metrics and
    labels: :mod:`gamedyn.games.mixture`.
    """

    dim = 2
    params = net_params(
        size=Param(int, 5, "modes per side n (K = n²)", low=1),
        spacing=Param(float, 2.0, "distance between neighbouring means", low=0.0, low_open=True),
        sigma=Param(float, 0.05, "standard deviation σ of each mode", low=0.0, low_open=True),
    )

    def means(self):
        axis = (np.arange(self.size) - (self.size - 1) / 2.0) * self.spacing
        gx, gy = np.meshgrid(axis, axis, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel()], 1)
