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

from .. import tree
from ..component import Param
from ..games.base import Params
from .context import Context, SameSamples

#: α, the opponents' step size the shaping rules assume (the papers take it equal to the learning
#: rate: tandem 0.1, matching pennies and IPD 1, the quartic game 0.01).
ALPHA = Param(float, 0.1, "α, the opponents' assumed step size", low=0.0, per_run=True)

def pairs(ctx: Context) -> int:
    """The ordered pairs (i, j ≠ i) of the game's players: the Hessian-vector products one term
    costs (2 for two players, 0 for a one-player game)."""
    n = len(ctx.game.players)
    return n * (n - 1)


def _over_opponents(ctx: Context, params: Params, samples: SameSamples, term) -> Params:
    """Σ_{j≠i} ``term(i, j)`` for every player i, each term evaluated on the step's samples (zeros
    for a player without opponents)."""
    out = {}
    for i in ctx.game.players:
        total = None
        for j in ctx.game.players:
            if j != i:
                with samples():
                    t = term(i, j)
                total = t if total is None else tree.map(torch.add, total, t)
        out[i] = tree.zeros_like(params[i]) if total is None else total
    return out


def lookahead_term(ctx: Context, params: Params, field: Params, samples: SameSamples) -> Params:
    """(H_o ξ)ᵢ = Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, ξⱼ⟩ with ξⱼ held constant, for every player i."""
    return _over_opponents(ctx, params, samples, lambda i, j: ctx.hvp(
        params, i, wrt=i, of=j, vector=field[j]))


def shaping_term(ctx: Context, params: Params, grads: dict[str, Params], samples: SameSamples
                 ) -> Params:
    """χᵢ = Σ_{j≠i} ∇ᵢ⟨∇ⱼLᵢ, ξⱼ⟩ with ∇ⱼLᵢ held constant (``grads[i][j]``, from
    :meth:`Context.loss_grads`), for every player i."""
    return _over_opponents(ctx, params, samples, lambda i, j: ctx.hvp(
        params, j, wrt=i, of=j, vector=grads[i][j]))


def shaping_terms(ctx: Context, params: Params, lookahead: bool = True
                  ) -> tuple[Params, Params | None, Params]:
    """ξ, H_o ξ (None without ``lookahead``) and χ at ``params``, every evaluation on the same
    samples (LOLA's and SOS's ingredients): one gradient evaluation and 2 × :func:`pairs`
    Hessian-vector products (1 × without ``lookahead``)."""
    samples = SameSamples(ctx.game)
    with samples():
        grads = ctx.loss_grads(params)
    field = field_of(grads)
    return (field, lookahead_term(ctx, params, field, samples) if lookahead else None,
            shaping_term(ctx, params, grads, samples))


def field_of(grads: dict[str, Params]) -> Params:
    """ξ from :meth:`Context.loss_grads`' blocks: ξᵢ = ∇ᵢLᵢ."""
    return {i: g[i] for i, g in grads.items()}
