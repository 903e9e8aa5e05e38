"""Mixture-of-Gaussians games with neural players: the base of ``mog_ring``, ``mog_grid`` and
``mog_1d`` (not registered itself).

The data p_d = (1/K) Σ_k N(μ_k, σ² I_d). The generator G is an MLP from a latent z ~ N(0, I) to R^d;
the discriminator an MLP D: R^d → R giving the logit a(x) (for ``wgan``, the critic value). Both are
batched over the run axis (:mod:`gamedyn.nets`). Defaults follow the unrolled-GAN setup (Metz et al.
2017, arXiv 1611.02163, App. A, as reproduced by ``locuslab/gradient_regularized_gan``): generator
2 × 128 ReLU → d, latent N(0, I₂₅₆), discriminator 1 × 128 ReLU → 1 with its input scaled by 1/4,
orthogonal initialisation with gain 0.8, minibatches of 512 real and 512 generated samples.

Objectives (each player minimises its loss; ζ = softplus, D = σ(a)), computed by
:func:`gamedyn.costs.gan_losses`:

- ``gan`` (Goodfellow et al. 2014): V = E_{p_d} log D(x) + E_z log(1 − D(G(z)))
  = −E_{p_d} ζ(−a(x)) − E_z ζ(a(G(z))); the discriminator's loss is −V. The generator minimises
  E_z f(a(G(z))) with the cost ``gen_cost`` (Goodfellow 2014, arXiv 1412.6515; NIPS 2016 tutorial
  §3.2.3): ``minimax`` f = −ζ(a) = log(1 − D) (recorded as V itself, the zero-sum loss, which
  differs by a term constant in the generator), ``non_saturating`` f = ζ(−a) = −log D,
  ``maximum_likelihood`` f = −exp(a) = −D/(1 − D). ``auto`` (default) is minimax.
- ``nsgan``: ``gan`` with the non-saturating generator cost (``gen_cost: auto``).
- ``wgan`` (Arjovsky et al. 2017, arXiv 1701.07875): V = E_{p_d} a(x) − E_z a(G(z)), the critic's
  loss −V, the generator's V; the critic needs a Lipschitz constraint: regularizer ``wgan_gp`` or
  ``clip``. ``gen_cost`` must be ``auto``.

Randomness: every loss evaluation draws a fresh minibatch — mode indices k ~ U{0…K−1} and
ε ~ N(0, I_d) for the data, z for the generator — from the run's own stream (``self.rng``,
:meth:`gamedyn.random.Streams.fast_normal`), so a run's noise depends on its seed only. Initial
networks come from :meth:`init_params` (``numpy.random.default_rng([seed, 1 or 2])``).

Recorded metrics (at record steps, on a fixed evaluation sample: ``eval_samples`` latents and data
points drawn once per run from a stream of their own, the same at every record step), see
:mod:`gamedyn.fit`: ``fit.modes``, ``fit.high_quality``, ``fit.kl``; ``fit.energy`` (on the first
``distance_samples`` evaluation samples and data points: its cost is quadratic); in 1-D ``fit.w1``
(on all of them); ``fit.mass[k]`` (the share of samples nearest mode k); ``D.real`` and ``D.fake``
(the discriminator's mean output D = σ(a) on the evaluation data and samples; for wgan the mean
critic value); and, with ``plot_samples`` > 0, the first that many evaluation samples' coordinates
``sample[i].x`` (``.y``), for the sample figure. The runs table gets the last record's ``modes``,
``high_quality``, ``kl``, ``energy``, the ``fit`` label and the sample-based ``dynamics`` label with
its evidence (:func:`gamedyn.fit.fit_labels`, :func:`gamedyn.fit.sample_dynamics`; thresholds are
parameters).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from .. import costs, fit
from ..component import Param
from ..errors import StudyError
from ..nets import ACTIVATIONS, INITS, MLP
from ..random import Streams
from .base import Params, SampleGame, Tensor

#: Stream ids of the fixed evaluation sample (latents, data), apart from training and recording.
EVAL_STREAM = 0x5EED_E7A1
GEN_COSTS = ("auto", *costs.COST_NAMES)

_NET = {
    "loss": Param(str, "gan", "objective", choices=costs.GAN_LOSSES),
    "gen_cost": Param(str, "auto", "generator cost f (gan: minimax by default; nsgan: non_saturating)",
                      choices=GEN_COSTS),
    "latent": Param(int, 256, "latent dimension (z ~ N(0, I))", low=1),
    "gen_hidden": Param(int, 128, "generator hidden width", low=1),
    "gen_layers": Param(int, 2, "generator hidden layers", low=0),
    "disc_hidden": Param(int, 128, "discriminator hidden width", low=1),
    "disc_layers": Param(int, 1, "discriminator hidden layers", low=0),
    "activation": Param(str, "relu", "hidden activation", choices=tuple(ACTIVATIONS)),
    "disc_input_scale": Param(float, 0.25, "factor on the discriminator's input", low=0.0, low_open=True),
    "init": Param(str, "orthogonal", "weight initialisation (biases 0)", choices=INITS),
    "gain": Param(float, 0.8, "initialisation gain", low=0.0, low_open=True),
    "batch": Param(int, 512, "real and generated samples per loss evaluation", low=1),
    "eval_samples": Param(int, 2500, "fixed evaluation sample size for the fit metrics", low=1),
    "distance_samples": Param(int, 1000, "evaluation samples (of each side) in the energy distance",
                              low=1),
    "plot_samples": Param(int, 0, "evaluation samples recorded as coordinates (sample figure)", low=0),
    **fit.THRESHOLD_PARAMS,   # thresholds of the fit and dynamics labels
}
_THRESHOLDS = tuple(fit.FIT_DEFAULTS)


def net_params(**data: Param) -> dict[str, Param]:
    """The parameters of a mixture game: its data's (``data``) followed by the networks' and the
    labels' thresholds."""
    return {**data, **_NET}


class MixtureGame(SampleGame):
    """A GAN on a mixture of K Gaussians with MLP players (see the module docstring)."""

    dim: ClassVar[int] = 2

    def means(self) -> np.ndarray:
        """The K mode means [K, d]."""
        raise NotImplementedError

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        if self.loss == "wgan" and self.gen_cost != "auto":
            raise StudyError("game.gen_cost", f"{self.gen_cost!r} is not accepted with loss 'wgan': the "
                                              f"critic gives no probability; expected auto")
        if self.loss == "nsgan" and self.gen_cost not in ("auto", "non_saturating"):
            raise StudyError("game.gen_cost", f"{self.gen_cost!r} is not accepted with loss 'nsgan' "
                                              f"(non-saturating by definition); use loss: gan, gen_cost: "
                                              f"{self.gen_cost}")
        self._means = torch.as_tensor(self.means(), dtype=dtype, device=device)
        self.gen_net = MLP((self.latent, *[self.gen_hidden] * self.gen_layers, self.dim),
                           self.activation, 1.0, self.init, self.gain)
        self.disc_net = MLP((self.dim, *[self.disc_hidden] * self.disc_layers, 1),
                            self.activation, self.disc_input_scale, self.init, self.gain)

    @property
    def n_modes(self) -> int:
        return self._means.shape[0]

    # --- the game ---------------------------------------------------------------------------

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"gen": self.gen_net.shapes(), "disc": self.disc_net.shapes()}

    def init_params(self, seeds: list[int]) -> Params:
        return {"gen": self.gen_net.init_params(seeds, 1, self.dtype, self.device),
                "disc": self.disc_net.init_params(seeds, 2, self.dtype, self.device)}

    def sample_data(self, rng: Streams, n: int) -> Tensor:
        """n data points per run [R, n, d]: a uniform mode index, plus σ·ε."""
        K = self.n_modes
        k = (rng.fast_uniform(n, dtype=torch.float64) * K).long().clamp_(max=K - 1)
        eps = rng.fast_normal(n, self.dim, dtype=self.dtype)
        return self._means[k] + self.sigma * eps

    def generate(self, params: Params, z: Tensor) -> Tensor:
        """G(z) for latents ``z`` [R, n, latent] → [R, n, d]."""
        return self.gen_net(params["gen"], z)

    def disc_logit(self, params: Params, x: Tensor) -> Tensor:
        return self.disc_net(params["disc"], x)[..., 0]

    def real_samples(self, n_runs: int) -> tuple[Tensor, Tensor]:
        x = self.sample_data(self.rng, self.batch)
        return self.minibatch(x)

    def fake_samples(self, params: Params) -> tuple[Tensor, Tensor]:
        z = self.rng.fast_normal(self.batch, self.latent, dtype=self.dtype)
        x = self.generate(params, z)
        return self.minibatch(x)

    def objective(self, params, real, fake):
        (xr, wr), (xf, wf) = real, fake
        return costs.gan_losses(self.loss, self.disc_logit(params, xr), wr,
                                self.disc_logit(params, xf), wf, self.gen_cost)

    # --- metrics ----------------------------------------------------------------------------

    EVAL_STREAM = EVAL_STREAM

    def draw_evaluation(self, rng: Streams) -> dict[str, Tensor]:
        z = rng.fast_normal(self.eval_samples, self.latent, dtype=self.dtype)
        data = self.sample_data(rng, self.eval_samples)
        n = min(self.distance_samples, self.eval_samples)
        return {"z": z, "data": data, "data_dd": fit.mean_distance(data[:, :n], data[:, :n])}

    def metrics(self, params: Params) -> dict[str, Tensor]:
        ev = self._evaluation()
        with torch.no_grad():
            x = self.generate(params, ev["z"])
            m = fit.mode_metrics(x, self._means, self.sigma)
            out = {"fit.modes": m["modes"], "fit.high_quality": m["high_quality"], "fit.kl": m["kl"]}
            n = min(self.distance_samples, self.eval_samples)
            out["fit.energy"] = fit.energy_distance(x[:, :n], ev["data"][:, :n], ev["data_dd"])
            if self.dim == 1:
                out["fit.w1"] = fit.wasserstein1(x[..., 0], ev["data"][..., 0])
            for k in range(self.n_modes):
                out[f"fit.mass[{k}]"] = m["hist"][:, k]
            ar, af = self.disc_logit(params, ev["data"]), self.disc_logit(params, x)
            to_d = (lambda a: a) if self.loss == "wgan" else costs.sigmoid
            out["D.real"], out["D.fake"] = to_d(ar).mean(1), to_d(af).mean(1)
            axes = "xy"[: self.dim]
            for i in range(min(self.plot_samples, self.eval_samples)):
                for j, a in enumerate(axes):
                    out[f"sample[{i}].{a}"] = x[:, i, j]
        return out

    def diagnose_fit(self, steps: np.ndarray, series: dict[str, np.ndarray], n_valid: np.ndarray
                     ) -> dict[str, np.ndarray]:
        """``fit`` from the last valid record and the sample-based ``dynamics`` (overriding the
        generic label, which judges the gradient-field norm), with evidence: the last record's
        ``modes``, ``high_quality``, ``kl``, ``energy`` (``w1``), ``disc_real``/``disc_fake`` (D's
        mean output on data and samples), and the dynamics evidence of
        :func:`gamedyn.fit.sample_dynamics`. See :mod:`gamedyn.fit` for both rules."""
        th = {k: getattr(self, k) for k in _THRESHOLDS}
        last = {name: fit.last_valid(series[f"fit.{name}"], n_valid)
                for name in ("modes", "high_quality", "kl", "energy")}
        out: dict[str, np.ndarray] = {
            "fit": fit.fit_labels(last["modes"], last["high_quality"], last["kl"], self.n_modes, th),
            **last,
        }
        if "fit.w1" in series:
            out["w1"] = fit.last_valid(series["fit.w1"], n_valid)
        out["disc_real"] = fit.last_valid(series["D.real"], n_valid)   # D's mean output at the end
        out["disc_fake"] = fit.last_valid(series["D.fake"], n_valid)
        mass = np.stack([series[f"fit.mass[{k}]"] for k in range(self.n_modes)], -1)   # [R, T, K]
        stopped = n_valid < len(steps)
        out.update(fit.sample_dynamics(steps, mass, n_valid, stopped, th, series["fit.energy"]))
        return out


def ring_means(modes: int, radius: float) -> np.ndarray:
    """μ_k = r (cos 2πk/K, sin 2πk/K), k = 0…K−1: K distinct modes (``linspace(0, 2π, K)``, common
    in copied code, makes the first and last coincide)."""
    angle = 2.0 * math.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], 1)
