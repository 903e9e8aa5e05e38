"""Noise-contrastive estimation (Gutmann & Hyvärinen 2010) as a one-player game."""

from __future__ import annotations

import math

import torch

from ..component import Param
from ..costs import zeta
from ..densities import Mixture
from .base import GAMES, Params, Tensor
from .density import DensityGame, density_params


@GAMES.register("nce")
class NCE(DensityGame):
    """Noise-contrastive estimation: the density model inside a classifier against a fixed noise.

    Gutmann & Hyvärinen (2010, AISTATS; 2012, JMLR 13): the density model p_m lives inside a
    logistic classifier that tells data from a *fixed* noise p_n.

    With ν noise points per data point the classifier is
    p_c(y = 1 | x) = p_m / (p_m + ν p_n) = σ(G(x)),  G(x) = log p̃_m(x; θ) − log p_n(x) − log ν,
    and the ``disc`` player (the model θ) maximises
    J(θ) = E_{p_d} log σ(G) + ν E_{p_n} log(1 − σ(G)),
    i.e. minimises E_{p_d} ζ(−G) + ν E_{p_n} ζ(G). With ν = 1 this is the value function
    V(p_c, p_g = p_n) of Goodfellow (2014, arXiv 1412.6515, §2). The optimum is p̃_m = p_d for any
    noise whose support covers the data, also for the ``unnormalised`` model, whose
    log-normaliser c is learned (c → c* = −log σ − ½ log 2π): NCE is consistent. Its expected
    gradient, E_{p_d}[(1 − σ(G)) ∇ log p̃_m] − ν E_{p_n}[σ(G) ∇ log p̃_m], is *not* proportional to the
    maximum-likelihood gradient (it is only in the limit ν → ∞; Gutmann & Hyvärinen 2012, §2.3):
    ``grad.cos_mle`` and ``grad.ratio_mle`` vary with θ.

    The noise is N(``noise_mean``, ``noise_std``²). ``gradient: minibatch`` draws ``batch`` data points
    and ``noise_batch`` noise points (default ``batch``) per evaluation; their weights 1/batch and
    ν/noise_batch make the estimate unbiased for any ν (Gutmann & Hyvärinen take ν·batch noise
    points, which matters for the estimator's variance, not for its expectation). Known equilibrium
    (``distance`` is recorded): the data's parameters when the data is Gaussian.
    """

    params = density_params(
        nu=Param(float, 1.0, "noise-to-data ratio ν", low=0.0, low_open=True),
        noise_mean=Param(float, 0.0, "mean of the Gaussian noise p_n"),
        noise_std=Param(float, 2.0, "standard deviation of the noise p_n", low=0.0, low_open=True),
        noise_batch=Param(int, 0, "minibatch: noise points per evaluation (0: the same as batch)",
                          low=0),
    )

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.noise = Mixture.gaussian(torch.tensor([self.noise_mean], dtype=dtype, device=device),
                                      torch.tensor([self.noise_std], dtype=dtype, device=device))

    def logit(self, mp: dict[str, Tensor], x: Tensor) -> Tensor:
        """G(x) = log p̃_m(x) − log p_n(x) − log ν."""
        return self.log_model(mp, x) - self.noise.log_prob(x) - math.log(self.nu)

    def criterion(self, params: Params, exact: bool) -> dict[str, Tensor]:
        mp = params["disc"]
        R = self.n_runs(params)
        xd, wd = self.data_points(R, exact)
        xn, wn = self.expectation_points(self.noise, R, exact, self.noise_batch or self.batch)
        loss = ((wd * zeta(-self.logit(mp, xd))).sum(-1)
                + self.nu * (wn * zeta(self.logit(mp, xn))).sum(-1))
        return {"disc": loss}

    def classifier(self, params: Params):
        mp = params["disc"]
        R = self.n_runs(params)
        xd, wd = self.data_points(R, exact=True)
        xn, wn = self.expectation_points(self.noise, R, exact=True)
        return self.logit(mp, xd), wd, self.logit(mp, xn), wn

    def equilibrium(self) -> Params | None:
        if self.data != "gaussian":
            return None  # a misspecified model: NCE's optimum depends on the noise
        return {"disc": self.as_params(self.family.truth(self.data_mean, self.data_std))}
