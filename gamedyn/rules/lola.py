"""LOLA: learning with opponent-learning awareness, differentiating through the opponents' step."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from ..optim.base import per_run
from .base import RULES, Rule, State, count
from .context import Context
from .shaping import ALPHA, pairs, shaping_terms


@RULES.register("lola")
class LOLA(Rule):
    """Exact LOLA: ξ − αH_oξ − αχ, differentiating through the opponents' step (arXiv 1709.04326).

    Exact LOLA (Foerster, Chen, Al-Shedivat, Whiteson, Abbeel & Mordatch 2018, "Learning with
    Opponent-Learning Awareness", AAMAS 2018, arXiv 1709.04326), in the form of Letcher et al. 2019
    (arXiv 1811.08469, §3), which we follow: "exact" means exact gradients and Hessian-vector
    products of the losses (no policy-gradient estimates).

    Player i minimises the first-order Taylor expansion of its loss after the opponents' gradient
    steps, Lᵢ + Σ_{j≠i} ⟨∇ⱼLᵢ, −αξⱼ⟩, and differentiates *through* those steps::

        LOLAᵢ = ξᵢ − α Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, ξⱼ⟩ = ξᵢ − α (H_o ξ)ᵢ − α χᵢ,
        χᵢ = Σ_{j≠i} (∇ᵢξⱼ)ᵀ ∇ⱼLᵢ,            z_{k+1} = z_k − η LOLA(z_k)   (with SGD)

    (notation of :mod:`gamedyn.rules.shaping`; the sign convention: every player *minimises*, so
    both terms enter with −α, as LookAhead's). The shaping term χ need not vanish where ξ does, so
    LOLA may move the fixed points: on tandem its field is (2u − 2)(1 − 2α) − 4αu along (1, 1)
    (u = x + y), zero at u = (1 − 2α)/(1 − 4α) ≠ 1 (4/3 at α = 0.1), off the game's fixed line.
    α (``alpha``) may differ per run.

    Where the sources differ: Foerster et al.'s own update (their §3.2: the first-order Taylor
    expansion, then only the term through the opponent's step) keeps the shaping term alone,
    ξ − αχ; Letcher et al. (§3) and their notebooks keep −αH_oξ as well, and we follow them by
    default. ``lookahead: false`` gives Foerster et al.'s rule (then on tandem the field along
    (1, 1) is (2u − 2) − 4αu, zero at u = 1/(1 − 2α), 5/4 at α = 0.1, at two Hessian-vector
    products per step instead of four).

    Cost: 1 gradient evaluation (every loss in every player's parameters,
    :meth:`Context.loss_grads`) and two Hessian-vector products per ordered pair of players (4 for
    two players; one, 2, without ``lookahead``) per step.
    """

    evaluations = 5.0  # a field and four Hessian-vector products
    params = {"alpha": ALPHA,
              "lookahead": Param(bool, True, "keep the look-ahead term −αH_oξ (Letcher et al. "
                                             "2019); false: the shaping term only (Foerster et "
                                             "al. 2018)")}

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        field, h_field, chi = shaping_terms(ctx, params, lookahead=self.lookahead)
        if h_field is not None:
            chi = tree.map(torch.add, h_field, chi)
        direction = tree.map(lambda g, c: g - per_run(self.alpha, g) * c, field, chi)
        params, opt = ctx.apply(direction, params, state["opt"])
        counts = count(state["counts"], grad_evals=1,
                       hvps=(2 if self.lookahead else 1) * pairs(ctx))
        return params, {**state, "opt": opt, "counts": counts}
