"""Best-response play: the discriminator (approximately) best-responds before each generator step."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from .base import RULES, Rule, State, count
from .context import Context


@RULES.register("best_response")
class BestResponse(Rule):
    """Best-response (equilibrium-enforcing) play: before each generator step, the discriminator
    steps towards its best response to the current generator until its gradient is small.

    With θ_G fixed, the discriminator takes inner steps with its own optimizer (state carried over
    from step to step)::

        θ_D⁰ = θ_D,   θ_Dⁱ⁺¹ = opt_D(∇_D L_disc(θ_G, θ_Dⁱ))
        while ‖∇_D L_disc(θ_G, θ_Dⁱ)‖ > tol and i < max_inner

    then the generator takes one step at the point reached, θ_G ← opt_G(∇_G L_gen(θ_G, θ_Dⁿ)).
    This is the "train the discriminator to optimality" idealisation behind the GAN analyses of
    Goodfellow et al. (2014, arXiv 1406.2661, Alg. 1 with k inner steps and Prop. 2) — here with
    an adaptive k: the inner loop is a tolerance-controlled approximation of
    θ_D*(θ_G) = argmin L_disc(θ_G, ·), as in the (inexact) best-response/gradient-descent-max
    schemes analysed e.g. by Jin, Netrapalli & Jordan (2020, arXiv 1902.00618). On games where
    the discriminator has no best response (xᵀAy, where L_disc is linear in y), the inner loop runs
    ``max_inner`` steps every time.

    **Per run.** Each run stops its inner loop by itself: once its gradient norm is ≤ ``tol`` its
    discriminator (and optimizer state) stop moving, for the rest of the step, while the other runs
    continue; the loop ends when every run has stopped, or after ``max_inner`` steps. The state's
    ``inner_steps`` (int64 ``[R]``) holds each run's number of inner steps at the last step.

    Cost, per run: a run that takes n inner steps evaluates both players' gradients n + 1 times
    (the convergence check at each of the n + 1 points, the last one also giving the generator's
    gradient), between 1 and ``max_inner`` + 1, varying from step to step; ``grad_evals_per_step``
    records its average. The batch evaluates all runs together until its slowest run stops, but a
    run that has stopped only sees its own point again: it is counted for what it needs, so its
    counts do not depend on its batch mates. No Hessian-vector products.

    Local stability (:mod:`gamedyn.stability`): at an equilibrium the discriminator's gradient is
    0 ≤ ``tol``, so the linearisation is that of generator-only steps (the discriminator does not
    move inside the tol-neighbourhood); it says nothing about the dynamics further out, where the
    inner loop runs. Needs both players; on a game without a ``disc`` (or ``gen``) it is
    simultaneous play (gradient descent of the one player). In a two-player game whose players
    have their own names (``tandem``'s ``p1``, ``p2``), the roles go by order
    (:mod:`gamedyn.players`): the second player best-responds, the first steps.
    """

    @classmethod
    def work(cls, config):
        return 1 + config["max_inner"] / 2

    params = {
        "tol": Param(float, 1e-4, "the inner loop stops when ‖∇_disc L_disc‖ ≤ tol", low=0.0,
                     per_run=True),
        "max_inner": Param(int, 100, "most inner discriminator steps per generator step", low=1),
    }
    needs = ("gen", "disc")
    fallback = "simultaneous"

    def init(self, ctx: Context, params: Params) -> State:
        state = super().init(ctx, params)
        state["inner_steps"] = torch.zeros_like(state["counts"]["grad_evals"])
        return state

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        opt = state["opt"]
        G, D = self.cast(ctx, "gen", "disc")
        x = tree.first(params[D])
        runs = x.shape[0]
        tol = torch.as_tensor(self.tol, dtype=x.dtype, device=x.device).expand(runs)
        done = torch.zeros(runs, dtype=torch.bool, device=x.device)
        inner = torch.zeros(runs, dtype=torch.int64, device=x.device)
        for i in range(self.max_inner + 1):
            grads = ctx.grad(params)
            done = done | ~(tree.norm(grads[D]) > tol)    # a NaN norm stops the run too
            if i == self.max_inner or bool(done.all()):
                break
            moved, moved_opt = ctx.apply({D: grads[D]}, params, opt)
            active = ~done
            params = {**params, D: tree.where(active, moved[D], params[D])}
            opt = {**opt, D: tree.where(active, moved_opt[D], opt[D])}
            inner = inner + active.long()
        params, opt = ctx.apply({G: grads[G]}, params, opt)
        return params, {**state, "opt": opt, "inner_steps": inner,
                        "counts": count(state["counts"], grad_evals=inner + 1)}
