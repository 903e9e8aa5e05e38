"""What the paper's density-estimation games share (``nce``, ``sce``, ``mle``; not registered itself).

Goodfellow (2014, arXiv 1412.6515, §2) sets noise-contrastive estimation, its self-contrastive
variant and maximum likelihood side by side as ways to fit *the same* density model p_m. Here that
model is the ``disc`` player's: in NCE it lives inside the classifier,
p_c(y = 1 | x) = σ(log p_m(x) − log(ν p_n(x))) (Gutmann & Hyvärinen 2010), so the one who learns is
the discriminator, and the generator is the fixed noise (no parameters) or, in SCE, a copy of the
model. ``mle`` trains the same ``disc`` model by maximum likelihood, so that the three games differ
only in their criterion, take one ``init:`` and record comparable coordinates
(``disc.mu``, ``disc.log_sigma``, ``disc.c``). Each of them has a single learning player (``players =
("disc",)``) except SCE with a stale copy, whose copy is the ``gen`` player.

Parameters common to the three: the data (:func:`gamedyn.densities.data_params`), the ``model``
family (``gaussian``: N(μ, σ²) with (``mu``, ``log_sigma``); ``unnormalised``: exp(−(x−μ)²/(2σ²) + c)
with a learned log-normaliser ``c``), and how expectations are taken: ``gradient: exact`` integrates
over p_d and the noise by quadrature (:func:`gamedyn.costs.normal_nodes`, ``nodes`` points per
Gaussian component on ±``width`` standard deviations; 801 on ±16 by default), so each step follows
the *expected* gradient;
``gradient: minibatch`` draws ``batch`` data points (and noise points) per evaluation from the run's
own random stream (:attr:`Game.rng`).

Recorded metrics (:meth:`DensityGame.metrics`), all **exact** (quadrature, no Monte Carlo noise)
whatever ``gradient`` is:

- ``grad.cos_mle``, ``grad.ratio_mle``, ``grad.proj_mle``: the expected gradient g of the game's own
  criterion (w.r.t. the model's parameters) against the maximum-likelihood gradient g_MLE =
  ∇ E_{p_d}[−log p_m] (normalised p_m): cosine, norm ratio ‖g‖/‖g_MLE‖, and projection
  ⟨g, g_MLE⟩/‖g_MLE‖², and ‖g_MLE‖ as ``grad.norm_mle`` (the ratios read 0 where ‖g_MLE‖ < 1e-10,
  at the MLE solution). SCE: 0.5, 1 and 0.5 at every parameter value.
- ``value``: the distinguishability value V(p_c, p_g) of :mod:`gamedyn.costs` with the game's own
  classifier and generator (NCE: the noise; SCE: the copy; MLE: the optimal classifier D* against the
  model, V = −log 4 + 2 JSD);
- ``model.mean``, ``model.std`` (of the normalised model) and, for the unnormalised family,
  ``model.log_norm_error`` = log Z = c − c*(σ) (0 when p̃ is normalised);
- the fit to the data: ``fit.kl``, ``fit.kl_rev``, ``fit.jsd``, ``fit.w1`` (and ``fit.modes``), see
  :mod:`gamedyn.densities`.

The fit label (``diagnose_fit``) is :func:`gamedyn.densities.fit_labels` with tolerance ``fit_tol``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import tree
from ..component import Param
from ..costs import normal_nodes, value
from ..densities import FAMILIES, Mixture, best_gaussian_kl, data_distribution, data_params, fit_labels
from ..densities import fit_metrics as _fit_metrics
from .base import Game, Params, Tensor

#: Below this norm a gradient counts as zero (the ratios are then reported as 0; 1-D problems
#: here have O(1) gradients away from their optimum, and 1e-10 is far above rounding noise).
TINY = 1e-10


def density_params(**extra: Param) -> dict[str, Param]:
    """The parameters every density-estimation game takes, plus its own."""
    return {
        **data_params(),
        "model": Param(str, "gaussian", "the model family: N(μ, σ²), or an unnormalised Gaussian "
                                        "shape with a learned log-normaliser c",
                       choices=("gaussian", "unnormalised")),
        **extra,
        "gradient": Param(str, "exact", "expected gradients by quadrature, or minibatch estimates",
                          choices=("exact", "minibatch")),
        "batch": Param(int, 256, "minibatch: data points per evaluation", low=1),
        "nodes": Param(int, 801, "exact: quadrature nodes per Gaussian component", low=16),
        "width": Param(float, 16.0, "exact: quadrature range in standard deviations", low=3.0),
        "fit_tol": Param(float, 0.01, "fit label: excess KL(p_d ‖ p_m) over the model family's "
                                      "best, in nats", low=0.0),
    }


def compare(g: dict[str, Tensor], ref: dict[str, Tensor], prefix: str = "grad") -> dict[str, Tensor]:
    """Cosine, norm ratio and projection of gradient ``g`` onto ``ref`` (same keys; per run).

    ``<prefix>.cos_mle`` = ⟨g, r⟩/(‖g‖‖r‖), ``<prefix>.ratio_mle`` = ‖g‖/‖r‖,
    ``<prefix>.proj_mle`` = ⟨g, r⟩/‖r‖², and ``<prefix>.norm_mle`` = ‖r‖. Where ‖r‖ (or ‖g‖) is
    below :data:`TINY` the ratios are reported as 0, not NaN: the recorder stops a run at any
    non-finite value, and a run that reaches the MLE solution has converged, not diverged. Read the
    ratios together with ``norm_mle``."""
    R = tree.n_runs(g)
    gv = torch.cat([g[k].reshape(R, -1) for k in ref], 1)
    rv = torch.cat([ref[k].reshape(R, -1) for k in ref], 1)
    dot = (gv * rv).sum(1)
    ng, nr = gv.norm(dim=1), rv.norm(dim=1)
    safe_r = torch.where(nr > TINY, nr, torch.ones_like(nr))
    safe_gr = torch.where((ng > TINY) & (nr > TINY), ng * nr, torch.ones_like(nr))
    return {
        f"{prefix}.cos_mle": torch.where((ng > TINY) & (nr > TINY), dot / safe_gr, torch.zeros_like(dot)),
        f"{prefix}.ratio_mle": torch.where(nr > TINY, ng / safe_r, torch.zeros_like(ng)),
        f"{prefix}.proj_mle": torch.where(nr > TINY, dot / safe_r**2, torch.zeros_like(dot)),
        f"{prefix}.norm_mle": nr,
    }


class DensityGame(Game):
    """Base of ``nce``, ``sce`` and ``mle``: a density model p_m (the ``disc`` player's) fitted to 1-D
    data by a criterion given in :meth:`criterion`. See the module docstring."""

    players = ("disc",)
    params = density_params()

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.family = FAMILIES[self.model]
        self.u, self.w = normal_nodes(self.nodes, self.width, dtype, device)
        self.data_dist = data_distribution(self, dtype, device)

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"disc": dict(self.family.shapes)}

    # --- pieces -------------------------------------------------------------------------------

    def expectation_points(self, dist: Mixture, n_runs: int, exact: bool, n: int | None = None
                           ) -> tuple[Tensor, Tensor]:
        """Points and weights [R, m] for expectations under ``dist``: its quadrature nodes, or ``n``
        (default ``batch``) draws from the game's stream with weights 1/n."""
        if exact:
            x, w = dist.nodes(self.u, self.w)
            return x.expand(n_runs, -1), w.expand(n_runs, -1)
        n = n or self.batch
        x = dist.sample(self.rng, n, fast=True)
        return x, torch.full_like(x, 1.0 / n)

    def data_points(self, n_runs: int, exact: bool) -> tuple[Tensor, Tensor]:
        return self.expectation_points(self.data_dist, n_runs, exact)

    def log_model(self, mp: dict[str, Tensor], x: Tensor) -> Tensor:
        """log p̃_m(x) (unnormalised for the unnormalised family)."""
        return self.family.log_density(mp, x)

    def mle_loss(self, mp: dict[str, Tensor], x: Tensor, w: Tensor) -> Tensor:
        """−E_{p_d} log p_m with p_m = p̃_m / Z normalised (log Z in closed form for the family)."""
        return -(w * self.log_model(mp, x)).sum(-1) + self.family.log_partition(mp)

    def criterion(self, params: Params, exact: bool) -> dict[str, Tensor]:
        """Each player's loss [R], with expectations exact (quadrature) or by minibatch."""
        raise NotImplementedError

    def classifier(self, params: Params) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(a at data nodes, their weights, a at the generator's nodes, their weights), exact, for
        the value V(p_c, p_g) of the game's own classifier p_c = σ(a) and generator p_g."""
        raise NotImplementedError

    def losses(self, params: Params) -> dict[str, Tensor]:
        return self.criterion(params, exact=self.gradient == "exact")

    def n_runs(self, params: Params) -> int:
        return tree.n_runs(params["disc"])

    # --- what the study records ----------------------------------------------------------------

    def metrics(self, params: Params) -> dict[str, Tensor]:
        leaves = {pl: {k: v.detach().requires_grad_(pl == "disc") for k, v in named.items()}
                  for pl, named in params.items()}
        mp = leaves["disc"]
        R = self.n_runs(params)
        names = list(mp)
        own = self.criterion(leaves, exact=True)["disc"]
        g = dict(zip(names, torch.autograd.grad(own.sum(), [mp[k] for k in names])))
        xd, wd = self.data_points(R, exact=True)
        mle = self.mle_loss(mp, xd, wd)
        g_mle = dict(zip(names, torch.autograd.grad(mle.sum(), [mp[k] for k in names])))
        out = compare(g, g_mle)
        with torch.no_grad():
            out["value"] = value(*self.classifier(leaves))
            detached = {k: v.detach() for k, v in mp.items()}
            model = self.family.distribution(detached)
            out["model.mean"] = detached["mu"]
            out["model.std"] = torch.exp(detached["log_sigma"])
            if "c" in detached:
                out["model.log_norm_error"] = self.family.log_partition(detached)
            out.update(_fit_metrics(self.data_dist, model, self.u, self.w))
        return out

    def diagnose_fit(self, steps: np.ndarray, series: dict[str, np.ndarray], n_valid: np.ndarray
                     ) -> dict[str, Any]:
        best = best_gaussian_kl(self.data_dist, self.u, self.w)
        return fit_labels(series, n_valid, best, self.fit_tol, self.data_dist.components)

    def truth(self) -> dict[str, float] | None:
        """The model parameters of the maximum-likelihood fit within the family, where the
        likelihood identifies them: moment matching (N(E x, Var x)) for the normalised Gaussian;
        for the unnormalised family with Gaussian data, the data's (μ, σ) and c* = −log σ − ½ log 2π
        (what NCE recovers); None otherwise."""
        d = self.data_dist
        mean, std = float(d.mean()[0]), float(torch.sqrt(d.variance())[0])
        if self.model == "gaussian":
            return self.family.truth(mean, std)
        return None

    def as_params(self, values: dict[str, float]) -> dict[str, Tensor]:
        return {k: torch.tensor(v, dtype=self.dtype, device=self.device) for k, v in values.items()}
