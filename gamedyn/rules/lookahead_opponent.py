"""LookAhead: each player's gradient at its opponents' predicted step, not differentiated through."""

from __future__ import annotations

from .. import tree
from ..games.base import Params
from ..optim.base import per_run
from .base import RULES, Rule, State, count
from .context import Context, SameSamples
from .shaping import ALPHA, lookahead_term, pairs


@RULES.register("lookahead_opponent")
class LookAheadOpponent(Rule):
    """LookAhead: ξ − αH_oξ, the gradient at the opponents' predicted step (Zhang & Lesser 2010).

    LookAhead (Zhang & Lesser 2010, "Multi-agent learning with policy prediction", AAAI 2010),
    in the form of Letcher et al. 2019 (arXiv 1811.08469, §3, "LA").

    Each player i differentiates its loss at the point its opponents are predicted to reach after
    one gradient step, θⱼ − αξⱼ, holding that step fixed (a stop-gradient through it)::

        LAᵢ = ∇ᵢ Lᵢ(θᵢ, θⱼ − α·stopgrad(ξⱼ)) ≈ ξᵢ − α Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, stopgrad(ξⱼ)⟩
            = ξᵢ − α (H_o ξ)ᵢ,            z_{k+1} = z_k − η LA(z_k)   (with SGD)

    (first order in α, as in the paper; notation of :mod:`gamedyn.rules.shaping`). α (``alpha``)
    may differ per run; α = 0 is simultaneous play. LA keeps the fixed points of ξ (H_oξ = 0 where
    ξ = 0), e.g. tandem's line x + y = 1, where its field is (1 − 2α)ξ.

    Cost: 1 gradient evaluation and one Hessian-vector product per ordered pair of players (2 for
    two players) per step; on a one-player game none (it is then gradient descent).
    """

    evaluations = 3.0  # a field and two Hessian-vector products
    params = {"alpha": ALPHA}

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        samples = SameSamples(ctx.game)
        with samples():
            field = ctx.grad(params)
        h_field = lookahead_term(ctx, params, field, samples)
        direction = tree.map(lambda g, h: g - per_run(self.alpha, g) * h, field, h_field)
        params, opt = ctx.apply(direction, params, state["opt"])
        counts = count(state["counts"], grad_evals=1, hvps=pairs(ctx))
        return params, {**state, "opt": opt, "counts": counts}
