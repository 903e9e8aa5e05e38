"""Zero-centred gradient penalties R1 (real data) and R2 (generated data)."""

from __future__ import annotations

from ..component import Param
from .base import REGULARIZERS, Regularizer, input_grad_sq, n_runs


class _ZeroCentred(Regularizer):
    needs_samples = True
    params = {"gamma": Param(float, 1.0, "penalty weight γ", low=0.0, per_run=True)}
    on = "real"

    def penalty(self, game, params):
        R = n_runs(params)
        x, w = game.real_samples(R) if self.on == "real" else game.fake_samples(params)
        return {"disc": 0.5 * self.gamma * (w * input_grad_sq(game, params, x)).sum(1)}


@REGULARIZERS.register("r1")
class R1(_ZeroCentred):
    """R1 (Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, eq. 9): the discriminator's loss gains
    (γ/2) E_{p_D} ‖∇_x D_ψ(x)‖². On the Dirac-GAN this is (γ/2)ψ², adding −γψ to ψ̇: the Jacobian
    at (0, 0) gets eigenvalues with negative real part and simultaneous play converges for small h."""

    on = "real"


@REGULARIZERS.register("r2")
class R2(_ZeroCentred):
    """R2 (Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, eq. 10): (γ/2) E_{p_θ} ‖∇_x D_ψ(x)‖²
    on generated samples, in the discriminator's loss only (also (γ/2)ψ² on the Dirac-GAN)."""

    on = "fake"
