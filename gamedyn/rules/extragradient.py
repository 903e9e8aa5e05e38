"""Extragradient: step from the field at an extrapolated point."""

from __future__ import annotations

from ..games.base import Params
from .base import RULES, Rule, State, count
from .context import Context


@RULES.register("extragradient")
class Extragradient(Rule):
    """Extragradient (Korpelevich 1976; Gidel et al. 2019, arXiv 1802.10551): look ahead, then step.

    With SGD of learning rate η (ξ = (∇_gen L_gen, ∇_disc L_disc))::

        z_{k+½} = z_k − η ξ(z_k)          (extrapolation)
        z_{k+1} = z_k − η ξ(z_{k+½})      (update, from z_k)

    With general optimizers (state s_k): the extrapolation is ``ctx.apply(ξ(z_k), z_k, s_k)`` and its
    new optimizer state is *discarded*; the update is ``ctx.apply(ξ(z_{k+½}), z_k, s_k)``, so
    s_{k+1} is s_k advanced by the extrapolated field only (with heavy-ball SGD: the velocity
    absorbs ξ(z_{k+½}), never ξ(z_k)). Gidel et al.'s Extra-Adam differs: it also advances the
    moments at the extrapolation. A regularizer's projection follows both moves (projected
    extragradient).

    On xᵀAy with SGD the iteration matrix is M = I − ηJ + η²J², J = [[0, A], [−Aᵀ, 0]]: each singular
    value σ of A gives eigenvalues 1 − η²σ² ∓ iησ of modulus √(1 − η²σ² + η⁴σ⁴) < 1 for 0 < ησ < 1,
    so the iterates converge where simultaneous play spirals out.

    Cost: 2 gradient evaluations per step, no Hessian-vector products.
    """

    evaluations = 2.0
    params = {}

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        opt = state["opt"]
        half, _ = ctx.apply(ctx.grad(params), params, opt)  # extrapolated point; its state dropped
        params, opt = ctx.apply(ctx.grad(half), params, opt)
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=2)}
