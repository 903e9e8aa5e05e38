"""A user-defined update rule, registered from outside gamedyn (the worked example of README.md).

Lookahead-minmax (Chavdarova et al. 2021, "Taming GANs with Lookahead-Minmax", arXiv 2006.14567):
both players take k fast steps of simultaneous gradient play from the slow point φ; then the slow
point moves part of the way towards where the fast steps ended, and the fast players restart there:

    θ_{t,0} = φ_t,   θ_{t,i+1} = θ_{t,i} − η ξ(θ_{t,i})  (i < k),   φ_{t+1} = φ_t + α(θ_{t,k} − φ_t).

On xᵀy with SGD the fast map is M = [[1, −η], [η, 1]] and φ_{t+1} = ((1 − α)I + αM^k) φ_t, whose
spectral radius is below 1 for suitable (η, k, α): the rotation of M^k is averaged away.
"""

from __future__ import annotations

from gamedyn.component import Param
from gamedyn.optim import per_run
from gamedyn.rules import RULES, Rule
from gamedyn.rules.base import count


@RULES.register("lookahead")
class Lookahead(Rule):
    """Lookahead-minmax (Chavdarova et al. 2021, arXiv 2006.14567) over simultaneous play."""

    params = {
        "k": Param(int, 5, "fast steps per slow update", low=1),
        "alpha": Param(float, 0.5, "slow step α", low=0.0, high=1.0, per_run=True),
    }

    def init(self, ctx, params):
        return {**super().init(ctx, params), "slow": params, "fast_steps": 0}

    def step(self, ctx, params, state):
        params, opt = ctx.apply(ctx.grad(params), params, state["opt"])
        slow, fast_steps = state["slow"], state["fast_steps"] + 1
        if fast_steps == self.k:  # one step of the rule is one fast step; every k-th also pulls back
            slow = {p: {n: s + per_run(self.alpha, s) * (params[p][n] - s) for n, s in slow[p].items()}
                    for p in slow}
            params, fast_steps = slow, 0
        return params, {**state, "opt": opt, "slow": slow, "fast_steps": fast_steps,
                        "counts": count(state["counts"], grad_evals=1)}
