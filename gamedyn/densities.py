"""One-dimensional densities over the run axis: the data distributions, the tractable model families
of the estimation games, and exact fit metrics (KL, JSD, W1) by quadrature.

Everything is a tensor with the run axis leading (length R, or 1 to broadcast over runs) and is
vectorised over runs. The data of the paper's games (:mod:`gamedyn.games.nce`, ``sce``, ``mle``,
``gan1d``) is a Gaussian or a two-mode Gaussian mixture (:func:`data_params`,
:func:`data_distribution`); the models are a Gaussian N(μ, σ²) with parameters (μ, log σ) and an
*unnormalised* Gaussian-shaped density exp(−(x − μ)²/(2σ²) + c) whose log-normaliser c is learned,
as in noise-contrastive estimation (Gutmann & Hyvärinen 2010, AISTATS, §2.2 "unnormalised models").

Exact fit metrics (quadrature, no Monte Carlo noise; :func:`fit_metrics`):

- ``fit.kl``      KL(p_d ‖ p_m) = E_{p_d}[log p_d − log p_m], the forward KL that maximum likelihood
  minimises;
- ``fit.kl_rev``  KL(p_m ‖ p_d);
- ``fit.jsd``     JSD(p_d ‖ p_m) = ½ KL(p_d ‖ M) + ½ KL(p_m ‖ M), M = ½(p_d + p_m), in nats
  (V(D*, p_m) = −log 4 + 2 JSD, Goodfellow et al. 2014, arXiv 1406.2661, Thm. 1);
- ``fit.w1``      the 1-Wasserstein distance W1 = ∫ |F_m(x) − F_d(x)| dx (in 1-D the L¹ distance of the
  CDFs, Vallender 1974), by the trapezoid rule on a grid covering both distributions; the same number
  ``scipy.stats.wasserstein_distance`` gives for samples, without their noise (tests compare them);
- ``fit.modes``   (mixture data only) how many data modes m_k the model covers, a mode counting as
  covered when p_m(m_k) ≥ 0.05 · p_d(m_k).

Here p_m is the model's *normalised* density (for the unnormalised family, the Gaussian of its shape).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .component import Param

Tensor = torch.Tensor
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: A data mode m_k is covered when p_m(m_k) ≥ COVER_RATIO · p_d(m_k).
COVER_RATIO = 0.05


@dataclasses.dataclass
class Mixture:
    """A 1-D Gaussian mixture for each run: ``weights``, ``means``, ``stds`` of shape [R, K]
    (R may be 1, broadcasting over runs). A Gaussian is the case K = 1."""

    weights: Tensor
    means: Tensor
    stds: Tensor

    @classmethod
    def gaussian(cls, mean: Tensor, std: Tensor) -> Mixture:
        """N(mean, std²) per run, from tensors [R]."""
        return cls(torch.ones_like(mean)[:, None], mean[:, None], std[:, None])

    @property
    def components(self) -> int:
        return self.means.shape[-1]

    def detach(self) -> Mixture:
        return Mixture(self.weights.detach(), self.means.detach(), self.stds.detach())

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for points x [R, n] → [R, n]."""
        z = (x[..., None] - self.means[:, None, :]) / self.stds[:, None, :]
        lp = (torch.log(self.weights)[:, None, :] - 0.5 * z * z
              - torch.log(self.stds)[:, None, :] - HALF_LOG_2PI)
        return lp[..., 0] if self.components == 1 else torch.logsumexp(lp, -1)

    def cdf(self, x: Tensor) -> Tensor:
        """F(x) for points x [R, n] → [R, n]."""
        z = (x[..., None] - self.means[:, None, :]) / self.stds[:, None, :]
        return (self.weights[:, None, :] * torch.special.ndtr(z)).sum(-1)

    def mean(self) -> Tensor:
        return (self.weights * self.means).sum(-1)

    def variance(self) -> Tensor:
        m = self.mean()
        return (self.weights * (self.stds**2 + self.means**2)).sum(-1) - m**2

    def nodes(self, u: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """Quadrature points and weights [R, K·n] from standard-normal nodes ``u``, ``w`` [n]
        (:func:`gamedyn.costs.normal_nodes`): x = m_k + s_k u, weight π_k w. Differentiable in the
        means and standard deviations (pathwise)."""
        R, K = self.means.shape
        x = self.means[:, :, None] + self.stds[:, :, None] * u
        wt = self.weights[:, :, None] * w
        return x.reshape(R, K * len(u)), wt.reshape(R, K * len(u))

    def sample(self, rng, n: int, fast: bool = False) -> Tensor:
        """n draws per run [R, n] from the per-run streams ``rng`` (:class:`gamedyn.random.Streams`);
        reparameterised (x = m_k + s_k z), so differentiable in the means and standard deviations.
        ``fast`` uses the streams' one-word draws (``fast_normal``/``fast_uniform``, |z| ≤ 6.8:
        right for training minibatches, not for tail statistics), where the streams have them."""
        dtype = self.means.dtype
        normal = getattr(rng, "fast_normal", rng.normal) if fast else rng.normal
        uniform = getattr(rng, "fast_uniform", rng.uniform) if fast else rng.uniform
        z = normal(n, dtype=dtype).to(self.means.device)
        R = z.shape[0]
        means, stds = self.means.expand(R, -1), self.stds.expand(R, -1)
        if self.components == 1:
            return means[:, :1] + stds[:, :1] * z
        u = uniform(n, dtype=dtype).to(self.means.device)
        cum = torch.cumsum(self.weights.expand(R, -1), -1)[:, None, :-1]
        k = (u[..., None] > cum).sum(-1)
        return torch.gather(means, 1, k) + torch.gather(stds, 1, k) * z


# --- data ---------------------------------------------------------------------------------------

def data_params() -> dict[str, Param]:
    """The data distribution's parameters, shared by the paper's games (structural: one data
    distribution per batch)."""
    return {
        "data": Param(str, "gaussian", "the data distribution p_d", choices=("gaussian", "mixture")),
        "data_mean": Param(float, 0.0, "mean of p_d (mixture: the midpoint of its two modes)"),
        "data_std": Param(float, 1.0, "standard deviation of p_d (mixture: of each mode)",
                          low=0.0, low_open=True),
        "data_sep": Param(float, 4.0, "mixture: distance between the two modes",
                          low=0.0, low_open=True),
        "data_weight": Param(float, 0.5, "mixture: weight of the left mode", low=0.01, high=0.99),
    }


def data_distribution(game, dtype: torch.dtype, device: str) -> Mixture:
    """p_d as a [1, K] mixture: N(data_mean, data_std²), or the mixture
    π N(m − sep/2, s²) + (1 − π) N(m + sep/2, s²) with π = data_weight."""
    def t(values):
        return torch.tensor([values], dtype=dtype, device=device)

    if game.data == "gaussian":
        return Mixture(t([1.0]), t([game.data_mean]), t([game.data_std]))
    h = game.data_sep / 2.0
    return Mixture(t([game.data_weight, 1.0 - game.data_weight]),
                   t([game.data_mean - h, game.data_mean + h]), t([game.data_std, game.data_std]))


# --- model families -----------------------------------------------------------------------------

class GaussianFamily:
    """N(μ, σ²) with parameters ``mu`` and ``log_sigma`` (normalised: log Z = 0)."""

    name = "gaussian"
    shapes: dict[str, tuple[int, ...]] = {"mu": (), "log_sigma": ()}

    @staticmethod
    def log_density(p: dict[str, Tensor], x: Tensor) -> Tensor:
        """log p_m(x) for x [R, n] (or [1, n])."""
        z = (x - p["mu"][:, None]) * torch.exp(-p["log_sigma"])[:, None]
        return -0.5 * z * z - p["log_sigma"][:, None] - HALF_LOG_2PI

    @staticmethod
    def log_partition(p: dict[str, Tensor]) -> Tensor:
        return torch.zeros_like(p["mu"])

    @staticmethod
    def distribution(p: dict[str, Tensor]) -> Mixture:
        """The normalised model N(μ, σ²) as a [R, 1] mixture."""
        return Mixture.gaussian(p["mu"], torch.exp(p["log_sigma"]))

    @staticmethod
    def truth(mean: float, std: float) -> dict[str, float]:
        """The parameters at which the model equals N(mean, std²)."""
        return {"mu": mean, "log_sigma": math.log(std)}


class UnnormalisedGaussianFamily(GaussianFamily):
    """log p̃(x) = −(x − μ)²/(2σ²) + c: a Gaussian shape whose log-normaliser c is a free parameter
    (Gutmann & Hyvärinen 2010, §2.2). The normalised model is N(μ, σ²); the log partition function
    is log Z = log ∫ p̃ = c + log σ + ½ log 2π, so p̃ is normalised iff c = c* = −log σ − ½ log 2π."""

    name = "unnormalised"
    shapes = {"mu": (), "log_sigma": (), "c": ()}

    @staticmethod
    def log_density(p, x):
        z = (x - p["mu"][:, None]) * torch.exp(-p["log_sigma"])[:, None]
        return -0.5 * z * z + p["c"][:, None]

    @staticmethod
    def log_partition(p):
        return p["c"] + p["log_sigma"] + HALF_LOG_2PI

    @staticmethod
    def truth(mean, std):
        return {"mu": mean, "log_sigma": math.log(std), "c": -math.log(std) - HALF_LOG_2PI}


FAMILIES = {"gaussian": GaussianFamily, "unnormalised": UnnormalisedGaussianFamily}


# --- exact fit metrics --------------------------------------------------------------------------

def kl(p: Mixture, q: Mixture, u: Tensor, w: Tensor) -> Tensor:
    """KL(p ‖ q) = E_p[log p − log q] by quadrature on p's nodes. [R]"""
    x, wt = p.nodes(u, w)
    return (wt * (p.log_prob(x) - q.log_prob(x))).sum(-1)


def jsd(p: Mixture, q: Mixture, u: Tensor, w: Tensor) -> Tensor:
    """The Jensen–Shannon divergence in nats, ½ KL(p ‖ M) + ½ KL(q ‖ M), M = ½(p + q). [R]"""
    out = 0.0
    for a, b in ((p, q), (q, p)):
        x, wt = a.nodes(u, w)
        la, lb = a.log_prob(x), b.log_prob(x)
        out = out + 0.5 * (wt * (la - (torch.logaddexp(la, lb) - math.log(2.0)))).sum(-1)
    return out


def w1(p: Mixture, q: Mixture, n: int = 4001, width: float = 10.0) -> Tensor:
    """W1(p, q) = ∫ |F_p − F_q| dx, trapezoid rule on n points spanning every component's
    mean ± width standard deviations (per run). [R]"""
    lo = torch.minimum((p.means - width * p.stds).amin(-1), (q.means - width * q.stds).amin(-1))
    hi = torch.maximum((p.means + width * p.stds).amax(-1), (q.means + width * q.stds).amax(-1))
    t = torch.linspace(0.0, 1.0, n, dtype=p.means.dtype, device=p.means.device)
    x = lo[:, None] + (hi - lo)[:, None] * t
    d = (p.cdf(x) - q.cdf(x)).abs()
    return torch.trapezoid(d, x, dim=-1)


def modes_covered(data: Mixture, model: Mixture) -> Tensor:
    """How many of the data's K modes m_k the model covers: p_m(m_k) ≥ COVER_RATIO · p_d(m_k). [R]"""
    R = max(data.means.shape[0], model.means.shape[0])
    m = data.means.expand(R, -1)
    ratio = model.log_prob(m) - data.log_prob(m)
    return (ratio >= math.log(COVER_RATIO)).sum(-1).to(data.means.dtype)


def fit_metrics(data: Mixture, model: Mixture, u: Tensor, w: Tensor) -> dict[str, Tensor]:
    """The exact fit of ``model`` to ``data`` (see the module docstring), each [R]."""
    model = model.detach()
    R = model.means.shape[0]
    data_r = Mixture(*(t.expand(R, -1) for t in (data.weights, data.means, data.stds)))
    out = {
        "fit.kl": kl(data_r, model, u, w),
        "fit.kl_rev": kl(model, data_r, u, w),
        "fit.jsd": jsd(data_r, model, u, w),
        "fit.w1": w1(model, data_r),
    }
    if data.components > 1:
        out["fit.modes"] = modes_covered(data_r, model)
    return out


def best_gaussian_kl(data: Mixture, u: Tensor, w: Tensor) -> float:
    """min over Gaussians q of KL(p_d ‖ q): attained by moment matching, q = N(E x, Var x)
    (the maximum-likelihood fit of the Gaussian family). 0 for Gaussian data."""
    q = Mixture.gaussian(data.mean(), torch.sqrt(data.variance()))
    return float(kl(data, q, u, w)[0])


def fit_labels(series: dict[str, np.ndarray], n_valid: np.ndarray, kl_best: float, tol: float,
               components: int) -> dict[str, np.ndarray]:
    """The fit label of each run from its last valid record, vectorised over runs.

    The decision rule, first that holds: no valid record → ``n/a``; (mixture data) a data mode is
    not covered (``fit.modes`` < K, see :func:`modes_covered`) → ``mode_collapse``;
    KL(p_d ‖ p_m) − min_Gaussian KL ≤ ``tol`` (nats) → ``fit`` (as good as the model family allows);
    otherwise ``underfit``. Evidence columns: ``fit_kl`` (final KL), ``fit_kl_excess`` (over the
    family's best, ``kl_best``), ``fit_w1`` and, for mixture data, ``fit_modes``."""
    R = len(n_valid)
    last = np.maximum(n_valid - 1, 0)
    rows = np.arange(R)

    def final(name):
        return series[name][rows, last] if name in series else np.full(R, np.nan)

    kl_final = final("fit.kl")
    excess = kl_final - kl_best
    label = np.where(excess <= tol, "fit", "underfit").astype(object)
    out = {"fit_kl": kl_final, "fit_kl_excess": excess, "fit_w1": final("fit.w1")}
    if components > 1:
        modes = final("fit.modes")
        label[modes < components] = "mode_collapse"
        out["fit_modes"] = modes
    label[(n_valid == 0) | ~np.isfinite(kl_final)] = "n/a"
    return {"fit": label, **out}
