"""Unrolled GAN: the generator differentiates through k look-ahead steps of the discriminator."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from .base import RULES, Rule, State, count
from .context import Context, Tensor


def _leaf(v: Tensor) -> Tensor:
    """``v`` as a node to differentiate with respect to: itself (a view) when it already carries a
    graph (``ctx.create_graph``: derivatives flow back to it), else a fresh leaf on the same
    storage (there is no graph to keep; ``v`` itself is not modified)."""
    return v.view_as(v) if v.requires_grad else v.detach().requires_grad_()


@RULES.register("unrolled")
class Unrolled(Rule):
    """Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2017, arXiv 1611.02163).

    The generator (θ_G) descends the *unrolled* loss, its own loss after the discriminator (θ_D)
    has taken ``k`` look-ahead steps with its optimizer, differentiated through those steps::

        θ_D⁰ = θ_D, s⁰ = s_D,   (θ_Dⁱ⁺¹, sⁱ⁺¹) = opt_D(∇_D L_disc(θ_G, θ_Dⁱ), sⁱ, θ_Dⁱ)   i < k
        g_G = d/dθ_G L_gen(θ_G, θ_Dᵏ(θ_G))
            = ∇_G L_gen(θ_G, θ_Dᵏ) + (∂θ_Dᵏ/∂θ_G)ᵀ ∇_D L_gen(θ_G, θ_Dᵏ)

    (they unroll Adam). The look-ahead starts from the current θ_D and the
    discriminator's current optimizer state s_D (momenta, Adam's moments and step count) and
    uses its own optimizer (plus the study's regularizer and its projection, as ``ctx.apply``
    does); it is evaluated with ``ctx.with_graph()``, so the second term, the derivative through
    the k steps, is kept. (Ports that run the inner loop under ``no_grad`` or detach θ_Dᵏ drop it
    and step the generator with ∇_G L_gen(θ_G, θ_Dᵏ) only.) The look-ahead is then discarded:

        θ_G ← opt_G(g_G),   θ_D ← opt_D(∇_D L_disc(θ_G, θ_D))   (simultaneously, from the current point)

    The discriminator's ordinary gradient is the first look-ahead gradient, evaluated once. With
    ``k = 0`` the rule is simultaneous play exactly, as it is on a game without a ``disc`` or a
    ``gen`` (it needs both players; simultaneous play is its fallback). In a two-player game whose
    players have their own names (``tandem``'s ``p1``, ``p2``), the roles go by order
    (:mod:`gamedyn.players`): the first player unrolls the second's look-ahead steps.

    On xᵀAy with SGD (learning rates η_G, η_D): θ_Dᵏ = y + kη_D Aᵀx, so
    g_G = Ay + 2kη_D AAᵀx: the unrolled generator also descends ‖Aᵀx‖², a damping of x.

    In a stochastic game each evaluation (each look-ahead step, the final loss) draws its own
    samples. Cost for k ≥ 1: k + 1 gradient evaluations (the k look-ahead gradients, one of them the
    discriminator's own, and the final loss's) and the reverse pass through the k steps, counted as
    k Hessian-vector products (each step's backward is a product with the Hessian blocks
    ∂²L_disc/∂θ_D∂(θ_G, θ_D)); k = 0: 1 gradient evaluation.
    """

    @classmethod
    def work(cls, config):
        return 2.0 * (config["k"] + 1)

    params = {
        "k": Param(int, 5, "look-ahead (unrolling) steps of the discriminator; 0: simultaneous play",
                   low=0),
    }
    needs = ("gen", "disc")
    fallback = "simultaneous"

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        opt = state["opt"]
        if self.k == 0:
            params, opt = ctx.apply(ctx.grad(params), params, opt)
            return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=1)}
        G, D = self.cast(ctx, "gen", "disc")
        graph = ctx.with_graph()
        gen = {k: _leaf(v) for k, v in params[G].items()}
        point = {**params, G: gen}
        look_opt = opt
        disc_grad = None
        for _ in range(self.k):
            g = graph.grad(point, players=(D,))
            if disc_grad is None:
                disc_grad = g[D]
            point, look_opt = graph.apply(g, point, look_opt)

        with torch.enable_grad():
            loss = graph.losses(point)[G].sum()
            gen_grad = tree.grad(loss, gen, create_graph=ctx.create_graph)
        if not ctx.create_graph:  # else the new disc and its optimizer state would keep the
            disc_grad = tree.detach(disc_grad)  # unroll's graph alive from step to step
        params, opt = ctx.apply({G: gen_grad, D: disc_grad}, params, opt)
        return params, {**state, "opt": opt,
                        "counts": count(state["counts"], grad_evals=self.k + 1, hvps=self.k)}
