"""Zero-centred gradient penalties R1 (real data) and R2 (generated data)."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import SampleGame
from .base import REGULARIZERS, Regularizer, input_grad_sq, n_runs


class _ZeroCentred(Regularizer):
    needs_samples = True
    params = {"gamma": Param(float, 1.0, "penalty weight γ", low=0.0, per_run=True)}
    on = "real"

    def penalty(self, game, params):
        R = n_runs(params)
        x, w = game.real_samples(R) if self.on == "real" else game.fake_samples(params)
        return {"disc": 0.5 * self.gamma * (w * input_grad_sq(game, params, x)).sum(1)}

    def derivatives(self, game, params):
        """(γ/2)·(the game's closed form of Σₙ wₙ‖∇_x D(xₙ)‖²'s derivatives), where it has one."""
        closed = game.input_grad_sq_derivatives(params, self.on) if isinstance(game, SampleGame) \
            else None
        if closed is None:
            return None
        half = 0.5 * self.gamma
        grad, hess = closed
        return {"disc": (half[:, None] * grad, half[:, None, None] * hess)}


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


#: The regularizers a run may choose per run within one batch (:class:`PenaltyChoice`).
CHOOSABLE = ("none", "r1", "r2")


def per_run_choice(config: dict, game: type) -> bool:
    """Whether runs of this regularizer ``config`` share batches with the other
    :data:`CHOOSABLE` ones on ``game`` (a game class): where the game gives the penalties'
    derivatives in closed form (:meth:`SampleGame.input_grad_sq_derivatives`), so that a batch
    of none, R1 and R2 runs costs what one of R1 runs alone does."""
    return (config["name"] in CHOOSABLE and issubclass(game, SampleGame)
            and game.input_grad_sq_derivatives is not SampleGame.input_grad_sq_derivatives)


class PenaltyChoice(Regularizer):
    """Each run's own choice of none, R1 or R2 (with its own γ) in one batch, built by
    :func:`gamedyn.regularizers.build` where :func:`per_run_choice` holds.

    A batch whose runs all chose one regularizer computes exactly what that regularizer computes
    (none: no penalty, and the losses unchanged); a mixed one computes each chosen penalty and
    picks per run (:class:`gamedyn.component.Choice`; a none run's penalty is an exact 0), so a run's
    numbers do not depend on its batch-mates' choices (``tests/test_per_run_choice.py``)."""

    needs_samples = True
    params = {"choice": Param(str, "none", "each run's regularizer", choices=CHOOSABLE,
                              per_run=True),
              "gamma": Param(float, 0.0, "each run's penalty weight γ (none: 0)", low=0.0,
                             per_run=True)}

    @classmethod
    def of(cls, configs: list[dict], dtype: torch.dtype, device: str) -> PenaltyChoice:
        return cls.build([{"choice": c["name"], "gamma": c.get("gamma", 0.0)} for c in configs],
                         dtype, device)

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.changes_losses = self.choice != "none"  # (an instance's own: a Choice is never "none")
        self._chosen = {"r1": R1(gamma=self.gamma), "r2": R2(gamma=self.gamma)}

    def _pick(self, compute):
        """``compute(regularizer)`` of each chosen penalty, picked per run (a none run's: zeros)."""
        if isinstance(self.choice, str):
            return {} if self.choice == "none" else compute(self._chosen[self.choice])
        parts = {name: compute(self._chosen[name]) for name in self.choice.names if name != "none"}
        if any(part is None for part in parts.values()):
            return None
        zero = tree.map(torch.zeros_like, next(iter(parts.values())))
        return self.choice.select(lambda name, mask: parts.get(name, zero))

    def penalty(self, game, params):
        return self._pick(lambda reg: reg.penalty(game, params))

    def derivatives(self, game, params):
        return self._pick(lambda reg: reg.derivatives(game, params))
