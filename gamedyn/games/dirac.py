"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..component import Param
from .base import GAMES, Game, Params, Tensor


def _f(loss: str, t: Tensor) -> Tensor:
    """The objective's f: f(t) = −log(1 + e^{−t}) (gan, nsgan) or f(t) = t (wgan)."""
    return t if loss == "wgan" else -F.softplus(-t)


@GAMES.register("dirac")
class Dirac(Game):
    """Dirac-GAN (Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, §2.1), equilibrium (0, 0).

    Generator p_θ = δ_θ, discriminator D_ψ(x) = ψx, data δ_0, objective
    L(θ, ψ) = f(ψθ) + f(0). ``disc`` ascends L (loss −L). ``gen`` descends L for ``gan`` and ``wgan``;
    for ``nsgan`` it minimises the non-saturating loss −f(−ψθ). Hence the fields
    θ̇ = −ψ f′(ψθ) (gan, wgan), θ̇ = −ψ f′(−ψθ) (nsgan), ψ̇ = θ f′(ψθ), with
    f(t) = −log(1 + e^{−t}) (gan, nsgan; f′(0) = ½) or f(t) = t (wgan).
    """

    params = {
        "loss": Param(str, "gan", "objective", choices=("gan", "nsgan", "wgan")),
    }

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"gen": {"theta": ()}, "disc": {"psi": ()}}

    def losses(self, params: Params) -> dict[str, Tensor]:
        theta, psi = params["gen"]["theta"], params["disc"]["psi"]
        t = psi * theta
        value = _f(self.loss, t) + _f(self.loss, torch.zeros_like(t))
        gen = -_f(self.loss, -t) if self.loss == "nsgan" else value
        return {"gen": gen, "disc": -value}

    def equilibrium(self) -> Params:
        return self.zeros()
