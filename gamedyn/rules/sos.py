"""Stable opponent shaping: LookAhead plus LOLA's shaping term, scaled down where it would hurt."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from ..optim.base import per_run
from .base import RULES, Rule, State, count
from .context import Context
from .shaping import ALPHA, pairs, shaping_terms


@RULES.register("sos")
class SOS(Rule):
    """Stable opponent shaping: LookAhead plus LOLA's term scaled by p (arXiv 1811.08469).

    Stable Opponent Shaping (Letcher, Foerster, Balduzzi, Rocktäschel & Whiteson 2019, ICLR 2019,
    arXiv 1811.08469, Algorithm 1).

    With ξ₀ = ξ − αH_oξ (LookAhead) and χ LOLA's shaping term (:mod:`gamedyn.rules.shaping`), per
    run::

        p₁ = 1                                    if ⟨−αχ, ξ₀⟩ ≥ 0
             min(1, −a‖ξ₀‖² / ⟨−αχ, ξ₀⟩)          otherwise
        p₂ = ‖ξ‖² if ‖ξ‖ < b, else 1
        SOS = ξ₀ − p αχ,   p = min(p₁, p₂),       z_{k+1} = z_k − η SOS(z_k)   (with SGD)

    (norms and inner products over all players' parameters of the run). p₁ keeps the shaping term
    from turning the step against LookAhead's (⟨SOS, ξ₀⟩ ≥ (1 − a)‖ξ₀‖²); p₂ → 0 at fixed
    points, so SOS keeps every fixed point of ξ (tandem's line x + y = 1, where LOLA does not), and
    near a fixed point it is LookAhead to first order. The paper asks a, b ∈ (0, 1); its notebook
    uses a = 0.5 and b = 0.1 (tandem and the IPD; the notebooks also use b = 0.5), which are the
    defaults here. α, a and b may differ per run.

    Cost: as LOLA, 1 gradient evaluation and two Hessian-vector products per ordered pair of
    players (4 for two players) per step.
    """

    evaluations = 5.0  # a field and four Hessian-vector products
    params = {
        "alpha": ALPHA,
        "a": Param(float, 0.5, "a of p₁ = min(1, −a‖ξ₀‖²/⟨−αχ, ξ₀⟩)", low=0.0, high=1.0,
                   low_open=True, high_open=True, per_run=True),
        "b": Param(float, 0.1, "b of p₂ = ‖ξ‖² when ‖ξ‖ < b", low=0.0, low_open=True,
                   per_run=True),
    }

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        field, h_field, chi = shaping_terms(ctx, params)
        xi0 = tree.map(lambda g, h: g - per_run(self.alpha, g) * h, field, h_field)
        dot = -self.alpha * tree.vdot(chi, xi0)                          # ⟨−αχ, ξ₀⟩
        sq0 = tree.vdot(xi0, xi0)
        negative = dot < 0
        ratio = -self.a * sq0 / torch.where(negative, dot, -torch.ones_like(dot))
        p1 = torch.where(negative, torch.clamp(ratio, max=1.0), torch.ones_like(dot))
        sq = tree.vdot(field, field)       # ‖ξ‖² (no square root: differentiable where ξ = 0)
        p2 = torch.where(sq < self.b ** 2, sq, torch.ones_like(sq))
        p = torch.minimum(p1, p2)
        direction = tree.map(lambda x0, c: x0 - per_run(p * self.alpha, x0) * c, xi0, chi)
        params, opt = ctx.apply(direction, params, state["opt"])
        counts = count(state["counts"], grad_evals=1, hvps=2 * pairs(ctx))
        return params, {**state, "opt": opt, "counts": counts}
