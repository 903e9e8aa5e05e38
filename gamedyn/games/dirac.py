"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018)."""

from __future__ import annotations

import torch

from .. import costs
from ..component import Choice, Param
from .base import GAMES, Params, SampleGame, Tensor


@GAMES.register("dirac")
class Dirac(SampleGame):
    """Dirac-GAN (Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, §2.1), equilibrium (0, 0).

    Generator p_θ = δ_θ, discriminator D_ψ(x) = ψx, data δ_0. The objective (their eq. 1)
    L(θ, ψ) = E_{p_θ} f(D_ψ(x)) + E_{p_D} f(−D_ψ(x)) = f(ψθ) + f(0). ``disc`` ascends L (loss −L).
    ``gen`` descends L for ``gan`` and ``wgan``; for ``nsgan`` it minimises the non-saturating loss
    −E_{p_θ} f(−D_ψ(x)) = −f(−ψθ). Hence the fields θ̇ = −ψ f′(ψθ) (gan, wgan),
    θ̇ = −ψ f′(−ψθ) (nsgan), ψ̇ = θ f′(ψθ), with f(t) = −log(1 + e^{−t}) (gan, nsgan; f′(0) = ½) or
    f(t) = t (wgan). The Jacobian of the field at (0, 0) has eigenvalues ±i f′(0): no damping.

    With f(t) = log σ(t), L is the value function V of :mod:`gamedyn.costs` for the data logit
    a(x) = −D_ψ(x) (their D_ψ is high on generated samples): L = E_{p_D} log σ(a) + E_{p_θ} log(1 − σ(a)),
    and for wgan L = E_{p_D} a − E_{p_θ} a; the nsgan loss −f(−ψθ) = ζ(−a) is the non-saturating
    cost. The losses come from :func:`gamedyn.costs.gan_losses`, whose log σ has exact derivatives
    at any ψθ.
    """

    params = {
        "loss": Param(str, "gan", "objective", choices=costs.GAN_LOSSES, per_run=True),
    }
    differentiable_gradients = True

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
        # the data logit a = −D_ψ(x) (see the class docstring)
        return costs.gan_losses(self.loss, -self.disc_logit(params, xr), wr,
                                -self.disc_logit(params, xf), wf)

    def gradients(self, params: Params) -> Params:
        """With t = ψθ and f′(t) = σ(−t) (gan, nsgan; :func:`gamedyn.costs.sigmoid`, exact at any t)
        or 1 (wgan): ∇_θ L_gen = ψ f′(t) (gan, wgan), ψ f′(−t) (nsgan); ∇_ψ L_disc = −θ f′(t).
        A per-run loss (:class:`~gamedyn.component.Choice`) gives each run its own loss's.
        Differentiable in θ and ψ (:attr:`differentiable_gradients`)."""
        theta, psi = params["gen"]["theta"], params["disc"]["psi"]
        if isinstance(self.loss, Choice):
            return self.loss.select(lambda name, m: self._gradients(name, theta, psi))
        return self._gradients(self.loss, theta, psi)

    @staticmethod
    def _gradients(loss: str, theta: Tensor, psi: Tensor) -> Params:
        if loss == "wgan":
            return {"gen": {"theta": psi}, "disc": {"psi": -theta}}
        t = psi * theta
        slope = costs.sigmoid(-t)
        gen = psi * (costs.sigmoid(t) if loss == "nsgan" else slope)
        return {"gen": {"theta": gen}, "disc": {"psi": -(theta * slope)}}

    def hessians(self, params: Params) -> dict[str, Tensor]:
        """Each loss is F(t), t = ψθ, so its Hessian in z = (θ, ψ) is
        [[ψ²F″, F′ + tF″], [F′ + tF″, θ²F″]]: with s = σ(t)σ(−t) = −f″(t),
        L_gen: F′ = σ(−t), F″ = −s (gan); F′ = σ(t), F″ = s (nsgan); F′ = 1, F″ = 0 (wgan);
        L_disc: F′ = −σ(−t), F″ = s (gan, nsgan); F′ = −1, F″ = 0 (wgan)."""
        theta, psi = params["gen"]["theta"].detach(), params["disc"]["psi"].detach()
        if isinstance(self.loss, Choice):
            return self.loss.select(lambda name, m: self._hessians(name, theta, psi))
        return self._hessians(self.loss, theta, psi)

    @staticmethod
    def _hessians(loss: str, theta: Tensor, psi: Tensor) -> dict[str, Tensor]:
        def hessian(d1: Tensor, d2: Tensor) -> Tensor:
            cross = d1 + t * d2
            return torch.stack([torch.stack([psi * psi * d2, cross], -1),
                                torch.stack([cross, theta * theta * d2], -1)], -2)

        t = psi * theta
        if loss == "wgan":
            one, zero = torch.ones_like(t), torch.zeros_like(t)
            return {"gen": hessian(one, zero), "disc": hessian(-one, zero)}
        up, down = costs.sigmoid(t), costs.sigmoid(-t)
        s = up * down
        gen = hessian(up, s) if loss == "nsgan" else hessian(down, -s)
        return {"gen": gen, "disc": hessian(-down, s)}

    def input_grad_sq_derivatives(self, params: Params, on: str) -> tuple[Tensor, Tensor]:
        """One sample of weight 1 (real: x = 0; fake: x = θ), where ‖∇_x D_ψ(x)‖² = ψ² as at every
        x: gradient 2ψ and Hessian 2 in ψ (differentiable in ψ)."""
        psi = params["disc"]["psi"]
        return (2 * psi)[:, None], torch.full_like(psi, 2.0)[:, None, None]

    def equilibrium(self) -> Params:
        return self.zeros()
