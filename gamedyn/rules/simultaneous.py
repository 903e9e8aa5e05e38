"""Simultaneous gradient play."""

from __future__ import annotations

from .base import RULES, Rule, count


@RULES.register("simultaneous")
class Simultaneous(Rule):
    """Simultaneous gradient play: both players step from the same point.

    z_{k+1} = z_k − η ξ(z_k) (with SGD; each player's optimizer in general), ξ = (∇_gen L_gen,
    ∇_disc L_disc). On xᵀy with SGD, ‖z_{k+1}‖ = √(1+η²) ‖z_k‖: the spiral outwards of
    Goodfellow (2014, arXiv 1412.6515, §4). One field evaluation per step.
    """

    params = {}

    def step(self, ctx, params, state):
        grads = ctx.grad(params)
        params, opt = ctx.apply(grads, params, state["opt"])
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=1)}
