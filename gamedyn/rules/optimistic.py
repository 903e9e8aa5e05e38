"""Optimistic gradient descent-ascent: a gradient step corrected by the previous field."""

from __future__ import annotations

from ..games.base import Params
from .base import RULES, Rule, State, count, past_field_state
from .context import Context


@RULES.register("optimistic")
class Optimistic(Rule):
    """Optimistic gradient descent-ascent (Daskalakis, Ilyas, Syrgkanis & Zeng 2018, arXiv 1711.00141).

    With SGD of learning rate η (ξ = (∇_gen L_gen, ∇_disc L_disc), ξ_k = ξ(z_k))::

        z_{k+1} = z_k − 2η ξ_k + η ξ_{k−1}

    i.e. each optimizer receives the adjusted field 2ξ_k − ξ_{k−1} (with a general optimizer, its
    update from that field).

    **First step.** ξ_{−1} := ξ(z_0), evaluated in ``init`` (not zero: a zero history makes step 0
    jump by 2ηξ_0, the bug of optax issue #1082). Step 0 is therefore the plain simultaneous step
    z_1 = z_0 − η ξ_0, and the state ``prev`` holds ξ_{k−1} thereafter.

    On xᵀAy with SGD the state (z_k, z_{k−1}) evolves by [[I − 2ηJ, ηJ], [I, 0]],
    J = [[0, A], [−Aᵀ, 0]]; its spectral radius is below 1 for small η. This rule's iterates are the
    extrapolated points of ``past_extragradient`` (see there).

    Cost: 1 gradient evaluation per step, plus 1 in ``init`` for ξ_{−1}; no Hessian-vector products.
    """

    params = {}

    def init(self, ctx: Context, params: Params) -> State:
        return past_field_state(ctx, params)

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        field = ctx.grad(params)
        prev = state["prev"]
        adjusted = {pl: {k: 2 * g - prev[pl][k] for k, g in named.items()}
                    for pl, named in field.items()}
        params, opt = ctx.apply(adjusted, params, state["opt"])
        return params, {**state, "opt": opt, "prev": field,
                        "counts": count(state["counts"], grad_evals=1)}
