"""Consensus optimisation: descend the field plus the gradient of its squared norm."""

from __future__ import annotations

from ..component import Param
from ..games.base import Params
from ..optim.base import per_run
from .base import RULES, Rule, State, count
from .context import Context


@RULES.register("consensus")
class Consensus(Rule):
    """Consensus optimisation (Mescheder, Nowozin & Geiger 2017, arXiv 1705.10461).

    Every player descends the field plus γ times the gradient of L(z) = ½‖ξ(z)‖² (the "consensus"
    both players agree to reduce), the same γ for both::

        ξ_γ = ξ + γ ∇(½‖ξ‖²) = ξ + γ Jᵀξ,    z_{k+1} = z_k − η ξ_γ(z_k)   (with SGD)

    (J = ∂ξ/∂z). The term −γJᵀJ moves the eigenvalues of the field's Jacobian away from the
    imaginary axis, which the paper identifies as the cause of non-convergence.

    **Default γ = 1.** On xᵀAy with SGD, each singular value σ of A gives eigenvalues
    1 − ηγσ² ∓ iησ of the iteration matrix, of squared modulus 1 − 2ηγσ² + η²σ²(1 + γ²σ²): the
    iterates converge iff 0 < η < 2γ / (1 + γ²σ²). γ = 1 converges for η < 1 at σ = 1, and for the
    Dirac-GAN (σ = f′(0) = ½) at the step size h = 0.2 of the authors' notebook, which also uses
    γ = 1 (``GAN_Consensus(1.)``, LMescheder/GAN_stability); γ = 0.1 would need η < 0.1995 there:
    at h = 0.2 its squared modulus is 1.000025, so the equilibrium is (slowly) unstable.
    The paper's image GANs used γ = 10 with RMSProp. γ may differ per run; γ = 0 is simultaneous
    play.

    Cost: 1 gradient evaluation and 1 Hessian-vector product (Jᵀξ) per step.
    """

    evaluations = 2.0
    params = {
        "gamma": Param(float, 1.0, "weight γ of ∇(½‖ξ‖²)", low=0.0, per_run=True),
    }

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        field = ctx.grad(params)
        jt_field = ctx.field_vjp(params, field)
        adjusted = {pl: {k: g + per_run(self.gamma, g) * jt_field[pl][k] for k, g in named.items()}
                    for pl, named in field.items()}
        params, opt = ctx.apply(adjusted, params, state["opt"])
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=1, hvps=1)}
