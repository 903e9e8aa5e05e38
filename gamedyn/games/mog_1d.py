"""A one-dimensional bimodal mixture."""

from __future__ import annotations

import numpy as np

from ..component import Param
from .base import GAMES
from .mixture import MixtureGame, net_params


@GAMES.register("mog_1d")
class Mog1D(MixtureGame):
    """A GAN on the 1-D mixture ½ N(−μ, σ²) + ½ N(μ, σ²), MLP players: the smallest game where a
    generator can collapse onto one mode. Defaults μ = 2, σ = 0.2. Besides the mode metrics (K = 2;
    high quality within 3σ: P(|N(0,1)| ≤ 3) ≈ 99.73% for the data) it records ``fit.w1``, the
    1-Wasserstein distance to the data sample. Players, objectives, metrics and labels:
    :mod:`gamedyn.games.mixture`.
    """

    dim = 1
    params = net_params(
        mean=Param(float, 2.0, "the modes are at ±mean", low=0.0, low_open=True),
        sigma=Param(float, 0.2, "standard deviation σ of each mode", low=0.0, low_open=True),
    )

    def means(self):
        return np.array([[-self.mean], [self.mean]])
