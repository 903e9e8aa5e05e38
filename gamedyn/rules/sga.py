"""Symplectic gradient adjustment: add the antisymmetric part of the game's Jacobian."""

from __future__ import annotations

import math

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from ..optim.base import per_run
from .base import RULES, Rule, State, count
from .context import Context


@RULES.register("sga")
class SGA(Rule):
    """Symplectic gradient adjustment (Balduzzi et al. 2018, arXiv 1802.05642).

    Balduzzi, Racanière, Martens, Foerster, Tuyls & Graepel, "The mechanics of n-player
    differentiable games" (ICML 2018). The game Hessian H = ∇ξ = J splits into S = (H + Hᵀ)/2
    and A = (H − Hᵀ)/2. Players descend::

        ξ_λ = ξ + λ Aᵀξ,    Aᵀξ = (Hᵀξ − Hξ)/2,    z_{k+1} = z_k − η ξ_λ(z_k)   (with SGD)

    ``lam`` is |λ| (may differ per run). With ``align`` (the paper's Algorithm 1), the sign of λ is
    chosen per run so that the adjustment points towards stable fixed points::

        λ = lam · sign(⟨ξ, Hᵀξ⟩ ⟨Aᵀξ, Hᵀξ⟩ / d + ε)

    (Hᵀξ = ∇(½‖ξ‖²)). Here d is the number of scalar parameters per run (the dimension of z, as in
    the paper's Algorithm 1) and ε = ``eps``, default 0.1. Sources differ: the authors' notebook
    divides by the number of parameter *tensors* instead (equal for the 1-D games here, e.g. the
    Dirac-GAN and xᵀAy with dim 1; for larger models, /d makes the ⟨·⟩⟨·⟩ term smaller and ε
    dominates more often, i.e. λ > 0). The sign is piecewise constant (no gradient flows through
    it); sign(0) = 0 leaves the plain field.

    On xᵀAy, S = 0, A = H and Aᵀξ = HᵀHz: ξ_λ = (J + λJᵀJ)z, the same field as ``consensus`` with
    γ = λ; ⟨ξ, Hᵀξ⟩ = zᵀJᵀJᵀJz = 0, so ``align`` gives λ = +lam there.

    Cost: 1 gradient evaluation and 2 Hessian-vector products (Hᵀξ, Hξ) per step.
    """

    evaluations = 3.0
    params = {
        "lam": Param(float, 1.0, "magnitude of λ", low=0.0, per_run=True),
        "align": Param(bool, True, "choose the sign of λ by the alignment criterion"),
        "eps": Param(float, 0.1, "ε of the alignment criterion", low=0.0, per_run=True),
    }

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        field = ctx.grad(params)
        ht_field = ctx.field_vjp(params, field)
        h_field = ctx.field_jvp(params, field)
        at_field = {pl: {k: (ht_field[pl][k] - h) / 2 for k, h in named.items()}
                    for pl, named in h_field.items()}
        lam = self.lam
        if self.align:
            d = sum(math.prod(v.shape[1:]) for named in params.values() for v in named.values())
            criterion = tree.vdot(field, ht_field) * tree.vdot(at_field, ht_field) / d + self.eps
            lam = lam * torch.sign(criterion)
        adjusted = {pl: {k: g + per_run(lam, g) * at_field[pl][k] for k, g in named.items()}
                    for pl, named in field.items()}
        params, opt = ctx.apply(adjusted, params, state["opt"])
        return params, {**state, "opt": opt, "counts": count(state["counts"], grad_evals=1, hvps=2)}
