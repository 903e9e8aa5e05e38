"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..component import Param
from .base import GAMES, Params, SampleGame, Tensor


def _f(loss: str, t: Tensor) -> Tensor:
    """The objective's f: f(t) = −log(1 + e^{−t}) (gan, nsgan) or f(t) = t (wgan)."""
    return t if loss == "wgan" else -F.softplus(-t)


@GAMES.register("dirac")
class Dirac(SampleGame):
    """Dirac-GAN (Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, §2.1), equilibrium (0, 0).

    Generator p_θ = δ_θ, discriminator D_ψ(x) = ψx, data δ_0. The objective (their eq. 1)
    L(θ, ψ) = E_{p_θ} f(D_ψ(x)) + E_{p_D} f(−D_ψ(x)) = f(ψθ) + f(0). ``disc`` ascends L (loss −L).
    ``gen`` descends L for ``gan`` and ``wgan``; for ``nsgan`` it minimises the non-saturating loss
    −E_{p_θ} f(−D_ψ(x)) = −f(−ψθ). Hence the fields θ̇ = −ψ f′(ψθ) (gan, wgan),
    θ̇ = −ψ f′(−ψθ) (nsgan), ψ̇ = θ f′(ψθ), with f(t) = −log(1 + e^{−t}) (gan, nsgan; f′(0) = ½) or
    f(t) = t (wgan). The Jacobian of the field at (0, 0) has eigenvalues ±i f′(0): no damping.
    """

    params = {
        "loss": Param(str, "gan", "objective", choices=("gan", "nsgan", "wgan")),
    }

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"gen": {"theta": ()}, "disc": {"psi": ()}}

    def disc_logit(self, params: Params, x: Tensor) -> Tensor:
        return params["disc"]["psi"][:, None] * x[..., 0]

    def real_samples(self, n_runs: int) -> tuple[Tensor, Tensor]:
        x = torch.zeros(n_runs, 1, 1, dtype=self.dtype, device=self.device)
        return x, torch.ones(n_runs, 1, dtype=self.dtype, device=self.device)

    def fake_samples(self, params: Params) -> tuple[Tensor, Tensor]:
        theta = params["gen"]["theta"]
        return theta[:, None, None], torch.ones_like(theta)[:, None]

    def objective(self, params, real, fake):
        (xr, wr), (xf, wf) = real, fake
        d_fake, d_real = self.disc_logit(params, xf), self.disc_logit(params, xr)
        value = (wf * _f(self.loss, d_fake)).sum(1) + (wr * _f(self.loss, -d_real)).sum(1)
        gen = -(wf * _f(self.loss, -d_fake)).sum(1) if self.loss == "nsgan" else value
        return {"gen": gen, "disc": -value}

    def equilibrium(self) -> Params:
        return self.zeros()
