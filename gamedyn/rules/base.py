"""The update-rule interface."""

from __future__ import annotations

from typing import Any

from ..component import Component, Registry
from ..games.base import Params
from .context import Context

RULES = Registry("rule")
State = dict[str, Any]


class Rule(Component):
    """How the players move in one step of the dynamics.

    A rule is a pair of functions over explicit state (cf. optax's ``init``/``update``), except that it
    sees the whole game through a :class:`Context`, because modified rules act on both players'
    fields jointly (look-ahead, consensus, SGA, competitive gradient descent, unrolling)::

        state = rule.init(ctx, params)                    # before step 0
        params, state = rule.step(ctx, params, state)     # one step, all R runs at once

    ``state`` is a dict of tensors with the run axis leading; by convention ``state["opt"]`` holds each
    player's optimizer state (``ctx.init_optimizers`` / ``ctx.apply``). ``step`` must be pure: no
    mutation of ``params`` or ``state`` in place, so that a step can be repeated, compared, or
    differentiated through (``ctx.create_graph``).

    **First step of history-based rules.** A rule that uses earlier fields (optimistic / extragradient
    from the past, momentum-like look-backs) initialises its history in ``init`` from the field *at the
    initial point*, never from zeros, so that step 0 is the plain (simultaneous) gradient step and no
    spurious jump occurs (the failure of optax issue #1082). Its docstring states this and a test
    checks step 0 by hand.

    What counts as *one step* is the rule's: for ``alternating`` it is one round (each player's
    scheduled updates). ``steps`` in a study counts these.
    """

    def init(self, ctx: Context, params: Params) -> State:
        return {"opt": ctx.init_optimizers(params)}

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        raise NotImplementedError
