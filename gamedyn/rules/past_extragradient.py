"""Extragradient from the past: extrapolate with the previous extrapolated field."""

from __future__ import annotations

from ..games.base import Params
from .base import RULES, Rule, State, count, past_field_state
from .context import Context


@RULES.register("past_extragradient")
class PastExtragradient(Rule):
    """Extragradient from the past (Popov 1980; Gidel et al. 2019, arXiv 1802.10551).

    Extragradient whose extrapolation reuses the field of the previous extrapolated point, so that
    only one new field is evaluated per step. With SGD of learning rate η::

        z_{k+½} = z_k − η ξ(z_{k−½})      (extrapolation, with the stored field)
        z_{k+1} = z_k − η ξ(z_{k+½})      (update, from z_k; ξ(z_{k+½}) is stored)

    **First step.** z_{−½} := z_0: ξ(z_0) is evaluated in ``init``, so step 0 is exactly an
    extragradient step. With general optimizers, as in ``extragradient``: the extrapolation is
    ``ctx.apply`` of the stored field from the current optimizer state, whose new state is
    discarded; the update is ``ctx.apply(ξ(z_{k+½}), z_k, s_k)``.

    **Relation to optimistic.** With SGD (no momentum, no projection) write w_k = z_{k+½}. Since
    z_k = w_k + η ξ(w_{k−1}), w_{k+1} = w_k − 2η ξ(w_k) + η ξ(w_{k−1}): the extrapolated points follow
    optimistic gradient descent-ascent. With the stated first steps the sequences coincide exactly:
    if o_k are the iterates of ``optimistic`` from the same z_0, then o_{k+1} = z_{k+½} and
    z_k = o_{k+1} + η ξ(o_k). On xᵀAy the state (z_k, z_{k−½}) evolves by
    [[I − ηJ, η²J²], [I, −ηJ]] (J = [[0, A], [−Aᵀ, 0]]), which has the same spectrum as optimistic's.

    Cost: 1 gradient evaluation per step, plus 1 in ``init`` for ξ(z_{−½}); no Hessian-vector
    products.
    """

    params = {}

    def init(self, ctx: Context, params: Params) -> State:
        return past_field_state(ctx, params)

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        opt = state["opt"]
        half, _ = ctx.apply(state["prev"], params, opt)  # extrapolated point; its state dropped
        field = ctx.grad(half)
        params, opt = ctx.apply(field, params, opt)
        return params, {**state, "opt": opt, "prev": field,
                        "counts": count(state["counts"], grad_evals=1)}
