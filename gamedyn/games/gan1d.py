"""A GAN with a tractable generator: a 1-D Gaussian (location–scale) generator against known data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..component import Param
from ..costs import COST_NAMES, LOG4, expect, generator_cost, normal_nodes, sigmoid, value
from ..densities import Mixture, best_gaussian_kl, data_distribution, data_params, fit_labels, fit_metrics
from .base import GAMES, Params, SampleGame, Tensor
from .density import TINY, compare


@GAMES.register("gan1d")
class GAN1D(SampleGame):
    """A GAN with a known generator density, G(z) = μ + σz, on 1-D Gaussian or mixture data.

    p_g = N(μ, σ²) with z ~ N(0, 1), against Gaussian or two-mode mixture data: the setting in which
    Goodfellow (2014, arXiv 1412.6515, §3) compares the generator costs with maximum likelihood.

    Players. ``gen`` owns (``mu``, ``log_sigma``) and minimises J = E_{x~p_g} f(a(x)) with the
    per-sample ``cost`` f of :mod:`gamedyn.costs` (``minimax`` −ζ(a), ``non_saturating`` ζ(−a),
    ``maximum_likelihood`` −exp(a)), differentiating through the samples x = μ + σz (the
    reparameterised, pathwise gradient of GAN practice, whose expectation is the paper's
    E_{p_g}[f ∇ log p_g]). The discriminator D = σ(a) is either

    - ``optimal``: the closed form a*(x) = log p_d(x) − log p_g(x) (Goodfellow et al. 2014, Prop. 1),
      re-evaluated at every step and held fixed while the generator differentiates (p_g's
      parameters are detached inside a*); there is then no ``disc`` player (``players = ("gen",)``),
      so rules that schedule a ``disc`` (``alternating``) do not apply; or
    - ``learned``: logistic regression a(x) = w₀ + w₁x + w₂x² (the ``disc`` player, ``w`` of shape
      (3,)), which maximises V(D, p_g) = E_{p_d} log D + E_{p_g} log(1 − D) (loss −V). For Gaussian
      data the log-ratio of two Gaussians is quadratic, so a* lies in the family and the learned
      discriminator is imperfect only for being under-trained; for mixture data it is misspecified.

    Expectations: ``gradient: exact`` integrates over p_d and over z by quadrature
    (:func:`gamedyn.costs.normal_nodes`, ``nodes`` points on ±``width`` standard deviations), so the
    players follow the expected gradients; ``minibatch`` draws ``batch`` data points and ``batch``
    latent z per evaluation from the run's own stream. Exact mode drops mass beyond ``width``
    generator standard deviations (16 by default): for the maximum-likelihood cost, whose integrand
    is p_d ∇ log p_g, data lying that far from the generator would be missed (as any minibatch
    misses it).

    Equilibrium (recorded as ``distance``): for Gaussian data, p_g = p_d (μ = data_mean,
    σ = data_std) and w = 0 (D ≡ ½), for every cost; unknown for mixture data.

    Recorded metrics (``diagnostics`` chooses how many):

    - ``fit``: ``model.mean``, ``model.std``, ``value`` = V(D, p_g) with the current discriminator,
      ``disc.D_real`` = E_{p_d} D and ``disc.D_fake`` = E_{p_g} D(G(z)),
      and the exact fit ``fit.kl`` (KL(p_d ‖ p_g)), ``fit.kl_rev``, ``fit.jsd``, ``fit.w1``
      (``fit.modes`` for mixture data), see :mod:`gamedyn.densities`; with a learned discriminator
      also ``disc.value_gap`` = V(D*, p_g) − V(D, p_g) ≥ 0, how far it is from the best response. All
      exact (quadrature).
    - ``gradient`` (default): also ``grad.cos_mle``, ``grad.ratio_mle``, ``grad.proj_mle``,
      ``grad.norm_mle`` — the generator's *expected* gradient under its cost and the current
      discriminator against the maximum-likelihood gradient ∇ KL(p_d ‖ p_g) = −E_{p_d} ∇ log p_g, in
      the parameters (μ, log σ). Exact (quadrature). With a learned discriminator also
      ``grad_opt.cos_mle``, ``grad_opt.ratio_mle``, ``grad_opt.proj_mle``: the same cost's gradient
      against the optimal discriminator at the same generator, the reference the learned one
      drifts from.
    - ``variance``: also the spread of the minibatch estimator. Each sample contributes the pathwise
      gradient g(z) = f′(a(x)) a′(x) (1, σz) at x = μ + σz, weighted by |f′(a)|
      (σ(a) = D, σ(−a) = 1 − D, or e^{a} = D/(1 − D) for the maximum-likelihood cost):

      * ``var.rel`` — exact (quadrature): tr Cov[g] / ‖E g‖², the estimator's relative variance per
        sample (a minibatch of n divides it by n). Finite only where E‖g‖² is (for the
        maximum-likelihood cost against Gaussian data, iff 2σ_g² > σ_d²); where it is infinite,
        quadrature returns a large finite number;
      * ``var.ess`` — exact: (E w)² / E w², the effective-sample-size fraction of the weights
        w = |f′(a)| (for the maximum-likelihood cost against the optimal discriminator,
        1/(1 + χ²(p_d ‖ p_g)));
      * ``var.rel_mc`` ± ``var.rel_mc_ci95`` — Monte Carlo over ``mc_samples`` draws of the recorder's
        own stream: the sample trace-covariance over the exact ‖E g‖², with a 95% normal-theory
        half-width (unreliable where the fourth moment is infinite, as heavy tails make it);
      * ``var.ess_mc`` — Monte Carlo: (Σ wᵢ)² / (n Σ wᵢ²) over the same draws;
      * ``var.top1_mc`` — Monte Carlo: the share of Σ‖gᵢ‖ carried by the largest 1% of ‖gᵢ‖ (0.01 if
        all samples weighed alike).

    The fit label is :func:`gamedyn.densities.fit_labels` (``fit_tol`` nats of KL over the best
    Gaussian; ``mode_collapse`` when a data mode is left uncovered).
    """

    params = {
        **data_params(),
        "cost": Param(str, "non_saturating", "the generator's per-sample cost f(a)", choices=COST_NAMES),
        "discriminator": Param(str, "optimal", "closed-form best response, or logistic regression on "
                                               "(1, x, x²)", choices=("optimal", "learned")),
        "gradient": Param(str, "exact", "expected gradients by quadrature, or minibatch estimates",
                          choices=("exact", "minibatch")),
        "batch": Param(int, 256, "minibatch: data points and latent draws per evaluation", low=1),
        "nodes": Param(int, 801, "exact: quadrature nodes per Gaussian component", low=16),
        "width": Param(float, 16.0, "exact: quadrature range in standard deviations", low=3.0),
        "diagnostics": Param(str, "gradient", "which metrics to record",
                             choices=("fit", "gradient", "variance")),
        "mc_samples": Param(int, 4096, "variance: Monte Carlo draws per record", low=100),
        "fit_tol": Param(float, 0.01, "fit label: excess KL(p_d ‖ p_g) over the best Gaussian, in "
                                      "nats", low=0.0),
    }

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.players = ("gen",) if self.discriminator == "optimal" else ("gen", "disc")
        self.f = generator_cost(self.cost)
        self.u, self.w = normal_nodes(self.nodes, self.width, dtype, device)
        self.data_dist = data_distribution(self, dtype, device)

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        out: dict[str, dict[str, tuple[int, ...]]] = {"gen": {"mu": (), "log_sigma": ()}}
        if self.discriminator == "learned":
            out["disc"] = {"w": (3,)}
        return out

    # --- the players ------------------------------------------------------------------------------

    @staticmethod
    def gen_dist(gen: dict[str, Tensor]) -> Mixture:
        """p_g = N(μ, σ²)."""
        return Mixture.gaussian(gen["mu"], torch.exp(gen["log_sigma"]))

    def logit(self, params: Params, x: Tensor) -> Tensor:
        """The discriminator's logit a(x) at points x [R, n]: a* = log p_d − log p_g (p_g's parameters
        detached) or w₀ + w₁x + w₂x²."""
        if self.discriminator == "optimal":
            gen = {k: v.detach() for k, v in params["gen"].items()}
            return self.data_dist.log_prob(x) - self.gen_dist(gen).log_prob(x)
        w = params["disc"]["w"]
        return w[:, 0:1] + w[:, 1:2] * x + w[:, 2:3] * x * x

    def disc_logit(self, params: Params, x: Tensor) -> Tensor:
        return self.logit(params, x[..., 0])

    def real_samples(self, n_runs: int, exact: bool | None = None) -> tuple[Tensor, Tensor]:
        exact = self.gradient == "exact" if exact is None else exact
        if exact:
            x, w = self.data_dist.nodes(self.u, self.w)
            x, w = x.expand(n_runs, -1), w.expand(n_runs, -1)
        else:
            x = self.data_dist.sample(self.rng, self.batch, fast=True)
            w = torch.full_like(x, 1.0 / self.batch)
        return x[..., None], w

    def fake_samples(self, params: Params, exact: bool | None = None) -> tuple[Tensor, Tensor]:
        exact = self.gradient == "exact" if exact is None else exact
        mu, sigma = params["gen"]["mu"][:, None], torch.exp(params["gen"]["log_sigma"])[:, None]
        if exact:
            z, w = self.u, self.w.expand(mu.shape[0], -1)
        else:
            normal = getattr(self.rng, "fast_normal", self.rng.normal)  # training noise: fast draws
            z = normal(self.batch, dtype=mu.dtype).to(mu.device)
            w = torch.full_like(z, 1.0 / self.batch)
        return (mu + sigma * z)[..., None], w

    def objective(self, params: Params, real: tuple[Tensor, Tensor], fake: tuple[Tensor, Tensor]
                  ) -> dict[str, Tensor]:
        (xr, wr), (xf, wf) = real, fake
        a_real, a_fake = self.disc_logit(params, xr), self.disc_logit(params, xf)
        out = {"gen": expect(self.f.f(a_fake), wf)}
        if self.discriminator == "learned":
            out["disc"] = -value(a_real, wr, a_fake, wf)
        return out

    def equilibrium(self) -> Params | None:
        if self.data != "gaussian":
            return None
        t = dict(dtype=self.dtype, device=self.device)
        eq = {"gen": {"mu": torch.tensor(self.data_mean, **t),
                      "log_sigma": torch.tensor(math.log(self.data_std), **t)}}
        if self.discriminator == "learned":
            eq["disc"] = {"w": torch.zeros(3, **t)}
        return eq

    # --- what the study records -------------------------------------------------------------------

    def metrics(self, params: Params) -> dict[str, Tensor]:
        gen = {k: v.detach().requires_grad_() for k, v in params["gen"].items()}
        P: Params = {"gen": gen}
        if "disc" in params:
            P["disc"] = {k: v.detach() for k, v in params["disc"].items()}
        R = gen["mu"].shape[0]
        (xr, wr), (xf, wf) = self.real_samples(R, exact=True), self.fake_samples(P, exact=True)
        a_real, a_fake = self.disc_logit(P, xr), self.disc_logit(P, xf)
        out = {"model.mean": gen["mu"].detach(), "model.std": torch.exp(gen["log_sigma"]).detach(),
               "value": value(a_real, wr, a_fake, wf).detach(),
               "disc.D_real": expect(sigmoid(a_real), wr).detach(),
               "disc.D_fake": expect(sigmoid(a_fake), wf).detach()}
        with torch.no_grad():
            out.update(fit_metrics(self.data_dist, self.gen_dist(gen), self.u, self.w))
        if self.discriminator == "learned":
            out["disc.value_gap"] = -LOG4 + 2.0 * out["fit.jsd"] - out["value"]
        if self.diagnostics == "fit":
            return out
        names = ["mu", "log_sigma"]
        J = expect(self.f.f(a_fake), wf)
        g = dict(zip(names, torch.autograd.grad(J.sum(), [gen[k] for k in names])))
        mle = -expect(self.gen_dist(gen).log_prob(xr[..., 0]), wr)
        g_mle = dict(zip(names, torch.autograd.grad(mle.sum(), [gen[k] for k in names])))
        out.update(compare(g, g_mle))
        if self.discriminator == "learned":  # the same cost against the best response, for reference
            x_opt = self.fake_samples(P, exact=True)[0][..., 0]
            a_opt = self.data_dist.log_prob(x_opt) - self.gen_dist(
                {k: v.detach() for k, v in gen.items()}).log_prob(x_opt)
            J_opt = expect(self.f.f(a_opt), wf)
            g_opt = dict(zip(names, torch.autograd.grad(J_opt.sum(), [gen[k] for k in names])))
            out.update(compare(g_opt, g_mle, prefix="grad_opt"))
            del out["grad_opt.norm_mle"]
        if self.diagnostics == "variance":
            out.update(self._variance(P, g))
        return out

    def _per_sample(self, P: Params, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample pathwise gradients (∂/∂μ, ∂/∂log σ) [R, n] of f(a(x)) at x = μ + σz, and the
        weights |f′(a)|."""
        mu = P["gen"]["mu"].detach()[:, None]
        sigma = torch.exp(P["gen"]["log_sigma"].detach())[:, None]
        x = (mu + sigma * z).detach().requires_grad_()
        a = self.logit(P, x)
        (dx,) = torch.autograd.grad(self.f.f(a).sum(), x)
        return dx, dx * sigma * z, self.f.weight(a.detach())

    def _variance(self, P: Params, g: dict[str, Tensor]) -> dict[str, Tensor]:
        mean2 = g["mu"].detach() ** 2 + g["log_sigma"].detach() ** 2
        ok = mean2 > TINY**2
        safe = torch.where(ok, mean2, torch.ones_like(mean2))

        def rel(x: Tensor) -> Tensor:
            return torch.where(ok, x / safe, torch.zeros_like(x))

        R = mean2.shape[0]
        gm, gs, wt = self._per_sample(P, self.u.expand(R, -1))
        w = self.w
        second = expect(gm**2 + gs**2, w)
        out = {"var.rel": rel(second - mean2),
               "var.ess": expect(wt, w) ** 2 / expect(wt**2, w)}
        n = self.mc_samples
        z = self.rng.normal(n, dtype=mean2.dtype).to(mean2.device)
        gm, gs, wt = self._per_sample(P, z)
        dev2 = (gm - gm.mean(1, keepdim=True)) ** 2 + (gs - gs.mean(1, keepdim=True)) ** 2
        trace = dev2.sum(1) / (n - 1)
        # the standard error by explicit sums (torch's std reduces differently for different R,
        # which would make a run's record depend on its batch-mates in the last bit)
        spread = ((dev2 - dev2.sum(1, keepdim=True) / n) ** 2).sum(1) / (n - 1)
        half = 1.96 * torch.sqrt(spread) / math.sqrt(n)
        norms = torch.sqrt(gm**2 + gs**2)
        k = max(1, math.ceil(n / 100))
        total = norms.sum(1)
        top = norms.topk(k, dim=1).values.sum(1)
        out.update({
            "var.rel_mc": rel(trace),
            "var.rel_mc_ci95": rel(half),
            "var.ess_mc": wt.sum(1) ** 2 / (n * (wt**2).sum(1)),
            "var.top1_mc": torch.where(total > 0, top / torch.where(total > 0, total, 1.0),
                                       torch.zeros_like(total)),
        })
        return out

    def diagnose_fit(self, steps: np.ndarray, series: dict[str, np.ndarray], n_valid: np.ndarray
                     ) -> dict[str, Any]:
        best = best_gaussian_kl(self.data_dist, self.u, self.w)
        return fit_labels(series, n_valid, best, self.fit_tol, self.data_dist.components)
