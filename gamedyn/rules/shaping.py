"""The opponent-shaping terms that LookAhead, LOLA and SOS share (Letcher et al. 2019).

Notation of Letcher, Foerster, Balduzzi, Rocktäschel & Whiteson, "Stable Opponent
Shaping in Differentiable Games" (ICLR 2019, arXiv 1811.08469): player i minimises Lᵢ(θ);
gⱼᵢ = ∇ⱼLᵢ (player i's loss differentiated in player j's parameters); ξᵢ = ∇ᵢLᵢ the simultaneous
field; H = ∇ξ and H_o its off-diagonal blocks, (H_o)ᵢⱼ = ∇ⱼξᵢ (j ≠ i). Two terms:

- the look-ahead term (H_o ξ)ᵢ = Σ_{j≠i} ∇ᵢ⟨gⱼᵢ, stopgrad(ξⱼ)⟩ = Σ_{j≠i} ∇ⱼ∇ᵢLᵢ ξⱼ: the first-order
  change of player i's gradient when each opponent takes its gradient step;
- the shaping term χᵢ = Σ_{j≠i} ∇ᵢ⟨stopgrad(gⱼᵢ), ξⱼ⟩ = Σ_{j≠i} (∇ᵢξⱼ)ᵀ gⱼᵢ: how player i's
  parameters change the opponents' steps, weighted by what those steps do to Lᵢ.

Both are sums of Hessian-vector products of the context (one per ordered pair of players each:
two each for two players), never dense Jacobians; all runs at once. Every evaluation of one step
draws the same samples from a stochastic game (as :class:`gamedyn.rules.cgd.CGD`'s do).
"""

from __future__ import annotations

import torch

from ..component import Param
from ..games.base import Params
from .cgd import _SameSamples
from .context import Context

#: α, the opponents' step size the shaping rules assume (the papers take it equal to the learning
#: rate: tandem 0.1, matching pennies and IPD 1, the quartic game 0.01).
ALPHA = Param(float, 0.1, "α, the opponents' assumed step size", low=0.0, per_run=True)

SameSamples = _SameSamples


def pairs(ctx: Context) -> int:
    """The ordered pairs (i, j ≠ i) of the game's players: the Hessian-vector products one term
    costs (2 for two players, 0 for a one-player game)."""
    n = len(ctx.game.players)
    return n * (n - 1)


def _sum(terms: list[Params], like: Params) -> Params:
    """The sum of player trees (zeros like ``like`` when there are none: a one-player game)."""
    if not terms:
        return {k: torch.zeros_like(v) for k, v in like.items()}
    out = terms[0]
    for t in terms[1:]:
        out = {k: out[k] + t[k] for k in out}
    return out


def lookahead_term(ctx: Context, params: Params, field: Params, samples: SameSamples) -> Params:
    """(H_o ξ)ᵢ = Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, ξⱼ⟩ with ξⱼ held constant, for every player i."""
    out = {}
    for i in ctx.game.players:
        terms = []
        for j in ctx.game.players:
            if j != i:
                with samples():
                    terms.append(ctx.hvp(params, i, wrt=i, of=j, vector=field[j]))
        out[i] = _sum(terms, params[i])
    return out


def shaping_term(ctx: Context, params: Params, grads: dict[str, Params], samples: SameSamples
                 ) -> Params:
    """χᵢ = Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, ξⱼ⟩ with ∇ⱼLᵢ held constant (``grads[i][j]``, from
    :meth:`Context.loss_grads`), for every player i."""
    out = {}
    for i in ctx.game.players:
        terms = []
        for j in ctx.game.players:
            if j != i:
                with samples():
                    terms.append(ctx.hvp(params, j, wrt=i, of=j, vector=grads[i][j]))
        out[i] = _sum(terms, params[i])
    return out


def field_of(grads: dict[str, Params]) -> Params:
    """ξ from :meth:`Context.loss_grads`' blocks: ξᵢ = ∇ᵢLᵢ."""
    return {i: g[i] for i, g in grads.items()}
