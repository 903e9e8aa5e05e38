"""Local symplectic surgery: ½(I + HᵀH⁻¹)ξ, with H⁻¹ξ solved matrix-free."""

from __future__ import annotations

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from .base import RULES, Rule, State, count
from .cgd import LinearSystem, _Correction, _Solve
from .context import Context, SameSamples, Tensor


@RULES.register("lss")
class LSS(Rule):
    """Local symplectic surgery: ½(I + HᵀH⁻¹)ξ, solved matrix-free by CG (arXiv 1901.00838).

    Local symplectic surgery (Mazumdar, Jordan & Sastry 2019, "On Finding Local Nash Equilibria
    (and Only Local Nash Equilibria) in Zero-Sum Games", arXiv 1901.00838), in the form of
    Letcher 2021 (arXiv 2005.12649) and Letcher et al. 2019's notation::

        LSS = ½ (ξ + Hᵀ v),   v = H⁻¹ξ,            z_{k+1} = z_k − η LSS(z_k)   (with SGD)

    (H = ∇ξ, the game's Jacobian). Near a fixed point ξ ≈ H(z − z*), so LSS ≈ ½(H + Hᵀ)(z − z*):
    the field is linearised to its symmetric part, and only fixed points whose symmetric part is
    positive definite attract (in a zero-sum game, the strict local Nash equilibria).

    **The solve**, matrix-free and per run: v is the Tikhonov-regularised least-squares solution

        v = argmin ‖Hv − ξ‖² + λ‖v‖²,   i.e.  (HᵀH + λI) v = Hᵀξ,

    by conjugate gradients on that symmetric positive definite system (:func:`conjugate_gradient`
    of :mod:`gamedyn.rules.cgd`; Hv and Hᵀu are the context's ``field_jvp``/``field_vjp``), each run
    until ‖residual‖ ≤ ``tol``·‖Hᵀξ‖ or ``max_iter`` iterations. λ = ``damping`` (default 10⁻⁶)
    is **the regularisation where H is singular** (tandem's H = [[2, 2], [2, 2]] everywhere): there
    v is the minimum-norm least-squares solution as λ → 0, and Hᵀv the projection of ξ on the
    range of Hᵀ, scaled by σ²/(σ² + λ) per singular value σ. Where H is invertible, v = H⁻¹ξ up to
    a relative error of order λ/σ_min². Mazumdar et al. leave H's singularity aside (their
    analysis assumes invertible H at the fixed points); λ is ours. ``iters`` in the state holds
    each run's CG iterations at the last step.

    **Differentiability** (``ctx.create_graph``, for the stability analysis): the solve is
    differentiated as the exact solution of its system, as :class:`gamedyn.rules.cgd.CGD`'s (the
    same ``_Solve``/``_Correction``), costing 2 more Hessian-vector products per step, counted.

    Cost per step: 1 gradient evaluation; Hessian-vector products: 2 (Hᵀξ, Hᵀv) + 2 per CG
    iteration (Hᵀ(Hp)), per run its own iterations.
    """

    @classmethod
    def work(cls, config):
        return 2.0 + config["max_iter"]  # two Hessian-vector products per CG iteration, half of them

    params = {
        "damping": Param(float, 1e-6, "λ of (HᵀH + λI) v = Hᵀξ", low=0.0, per_run=True),
        "tol": Param(float, 1e-10, "CG stops when ‖residual‖ ≤ tol·‖Hᵀξ‖", low=0.0,
                     per_run=True),
        "max_iter": Param(int, 100, "most CG iterations per step", low=1),
    }

    def init(self, ctx: Context, params: Params) -> State:
        state = super().init(ctx, params)
        state["iters"] = torch.zeros_like(state["counts"]["hvps"])
        return state

    def system(self, ctx: Context, params: Params, samples: SameSamples) -> LinearSystem:
        """HᵀH + λI at ``params`` on flat ``[R, n]`` vectors (symmetric: its own transpose)."""
        def matvec(v: Tensor) -> Tensor:
            with samples():
                hv = ctx.field_jvp(params, tree.unravel(v, params))
            with samples():
                hthv = ctx.field_vjp(params, hv)
            return tree.ravel(hthv) + self.damping[:, None] * v

        return LinearSystem(matvec, matvec, "cg", self.tol, self.max_iter)

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        samples = SameSamples(ctx.game)
        with samples():
            field = ctx.grad(params)
        with samples():
            b = tree.ravel(ctx.field_vjp(params, field))               # Hᵀξ
        constant = self.system(ctx.with_graph(False), params, samples)
        zero = torch.zeros_like(b[:, 0])
        v, iters = _Solve.apply(constant, b, None, zero)
        if ctx.create_graph:   # v = v̂ + S₀(b − A(z) v̂): the exact solution's derivative
            v = v + _Correction.apply(constant, b - self.system(ctx, params, samples).matvec(v))
        with samples():
            ht_v = ctx.field_vjp(params, tree.unravel(v, params))
        direction = tree.map(lambda g, h: (g + h) / 2, field, ht_v)
        params, opt = ctx.apply(direction, params, state["opt"])
        hvps = 2 + 2 * iters + 2 * ctx.create_graph
        counts = count(state["counts"], grad_evals=1, hvps=hvps)
        return params, {**state, "opt": opt, "iters": iters, "counts": counts}
