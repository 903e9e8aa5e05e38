"""Competitive gradient descent: each step is the Nash equilibrium of a bilinear local game."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .. import tree
from ..component import Param
from ..games.base import Params
from ..players import roles
from .base import RULES, Rule, State, count
from .context import Context, SameSamples, Tensor

Matvec = Callable[[Tensor], Tensor]


def _threshold(tol: Tensor | float, norm_b: Tensor, atol: Tensor | float) -> Tensor:
    """max(tol·‖b‖, atol) per run, tol raised to 10 ε of the dtype at least (a relative residual
    below rounding is never reached: float32 runs would otherwise always take ``max_iter``)."""
    floor = 10 * torch.finfo(norm_b.dtype).eps
    tol = torch.as_tensor(tol, dtype=norm_b.dtype, device=norm_b.device).clamp(min=floor)
    return torch.maximum(tol * norm_b, torch.as_tensor(atol, dtype=norm_b.dtype, device=norm_b.device))


def conjugate_gradient(matvec: Matvec, b: Tensor, x0: Tensor | None = None,
                       tol: Tensor | float = 1e-10, max_iter: int = 100,
                       atol: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """Solve A x = b for every run at once by conjugate gradients (A symmetric positive definite).

    ``b`` and ``x0`` are ``[R, n]`` (one system per run, A applied by ``matvec`` to all runs
    together); ``tol`` and ``atol`` are floats or per-run tensors ``[R]``. Each run has its own
    step sizes α, β and stops (α = 0 from then on: its iterate no longer moves) once
    ‖r‖ ≤ max(tol·‖b‖, atol), r = b − A x (tol raised to 10 machine ε at least); the loop ends
    when every run has stopped or after ``max_iter`` iterations. A run whose residual is not
    finite stops at once.

    **Warm start.** From x₀ the initial residual is r₀ = b − A x₀ (one extra product with A). Taking
    r₀ = b, as a downstream implementation once did, solves A(x − x₀) = b instead: the result is off
    by x₀.

    Returns (x, iterations per run, an int64 tensor ``[R]``). One ``matvec`` per iteration.
    """
    if x0 is None:
        x, r = torch.zeros_like(b), b
    else:
        x, r = x0, b - matvec(x0)
    thr = _threshold(tol, b.norm(dim=1), atol)
    p, rr = r, tree.vdot(r, r)
    active = rr.sqrt() > thr
    iters = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = matvec(p)
        pap = tree.vdot(p, ap)
        alpha = torch.where(active, rr / torch.where(active, pap, torch.ones_like(pap)), 0.0)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        rr_new = tree.vdot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), 0.0)
        p = r + beta[:, None] * p
        iters = iters + active.long()
        rr = torch.where(active, rr_new, rr)
        active = active & (rr.sqrt() > thr)
    return x, iters


def cg_normal_equations(matvec: Matvec, rmatvec: Matvec, b: Tensor, x0: Tensor | None = None,
                        tol: Tensor | float = 1e-10, max_iter: int = 100,
                        atol: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """Solve A x = b for any nonsingular A by conjugate gradients on AᵀA x = Aᵀb (CGLS form).

    ``matvec`` applies A, ``rmatvec`` applies Aᵀ. CGLS (Hestenes & Stiefel 1952) keeps r = b − Ax
    and s = Aᵀr and never forms AᵀA; in exact arithmetic its iterates are those of CG on the
    normal equations, whose matrix is symmetric positive definite when A is
    nonsingular (for singular A it converges to a least-squares solution). A run stops once
    ‖s‖ ≤ max(tol·‖Aᵀb‖, atol); the warm start uses r₀ = b − A x₀, s₀ = Aᵀr₀.
    One ``matvec`` and one ``rmatvec`` per iteration, as the per-run masks of
    :func:`conjugate_gradient`. Returns (x, iterations per run).
    """
    if x0 is None:
        x, r = torch.zeros_like(b), b
        s = rmatvec(r)
        norm_atb = s.norm(dim=1)
    else:
        x, r = x0, b - matvec(x0)
        s = rmatvec(r)
        norm_atb = rmatvec(b).norm(dim=1)
    thr = _threshold(tol, norm_atb, atol)
    p, ss = s, tree.vdot(s, s)
    active = ss.sqrt() > thr
    iters = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        q = matvec(p)
        qq = tree.vdot(q, q)
        alpha = torch.where(active, ss / torch.where(active, qq, torch.ones_like(qq)), 0.0)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * q
        s = rmatvec(r)
        ss_new = tree.vdot(s, s)
        beta = torch.where(active, ss_new / torch.where(active, ss, torch.ones_like(ss)), 0.0)
        p = s + beta[:, None] * p
        iters = iters + active.long()
        ss = torch.where(active, ss_new, ss)
        active = active & (ss.sqrt() > thr)
    return x, iters


@dataclasses.dataclass
class LinearSystem:
    """A matrix-free system A x = b over the run axis and how to solve it."""

    matvec: Matvec
    rmatvec: Matvec
    method: str                  # "cg" (A symmetric positive definite) or "cgnr" (any nonsingular A)
    tol: Tensor | float
    max_iter: int

    def solve(self, b: Tensor, x0: Tensor | None = None, atol: Tensor | float = 0.0
              ) -> tuple[Tensor, Tensor]:
        if self.method == "cg":
            return conjugate_gradient(self.matvec, b, x0, self.tol, self.max_iter, atol)
        return cg_normal_equations(self.matvec, self.rmatvec, b, x0, self.tol, self.max_iter, atol)

    def transpose(self) -> LinearSystem:
        return dataclasses.replace(self, matvec=self.rmatvec, rmatvec=self.matvec)


class _Solve(torch.autograd.Function):
    """x = A⁻¹b by an iterative solver, differentiated as the exact solution: ∂x/∂b = A⁻¹, so the
    backward pass solves Aᵀλ = ∂/∂x (with the same solver; itself differentiable, for double
    backward). A is a constant here; its dependence on the parameters enters through
    :class:`_Correction` in :meth:`CGD.step`."""

    @staticmethod
    def forward(fctx: Any, system: LinearSystem, b: Tensor, x0: Tensor | None, atol: Tensor
                ) -> tuple[Tensor, Tensor]:
        x, iters = system.solve(b, x0, atol)
        fctx.system = system
        fctx.mark_non_differentiable(iters)
        return x, iters

    @staticmethod
    def backward(fctx: Any, grad_x: Tensor, grad_iters: Tensor | None) -> tuple[Any, ...]:
        zero = torch.zeros(grad_x.shape[0], dtype=grad_x.dtype, device=grad_x.device)
        lam, _ = _Solve.apply(fctx.system.transpose(), grad_x, None, zero)
        return None, lam, None, None


class _Correction(torch.autograd.Function):
    """Value 0, derivative A⁻¹ (a backward solve with Aᵀ): the first-order part of the solve of a
    residual that is already below the tolerance. See :meth:`CGD.step`."""

    @staticmethod
    def forward(fctx: Any, system: LinearSystem, r: Tensor) -> Tensor:
        fctx.system = system
        return torch.zeros_like(r)

    @staticmethod
    def backward(fctx: Any, grad: Tensor) -> tuple[Any, ...]:
        zero = torch.zeros(grad.shape[0], dtype=grad.dtype, device=grad.device)
        lam, _ = _Solve.apply(fctx.system.transpose(), grad, None, zero)
        return None, lam


@RULES.register("cgd")
class CGD(Rule):
    """Competitive gradient descent (Schäfer & Anandkumar 2019, arXiv 1905.12103).

    Florian Schäfer and Anima Anandkumar, "Competitive Gradient Descent" (NeurIPS 2019). With gen
    (x) minimising f = L_gen and disc (y) minimising g = L_disc, each step plays the Nash
    equilibrium of the local bilinear game
    min_Δx Δxᵀ∇ₓf + Δxᵀ D²ₓᵧf Δy + ‖Δx‖²/(2ηₓ),  min_Δy Δyᵀ∇ᵧg + Δyᵀ D²ᵧₓg Δx + ‖Δy‖²/(2ηᵧ)::

        Δx = −ηₓ (I − ηₓηᵧ D²ₓᵧf D²ᵧₓg)⁻¹ (∇ₓf − ηᵧ D²ₓᵧf ∇ᵧg)
        Δy = −ηᵧ (I − ηₓηᵧ D²ᵧₓg D²ₓᵧf)⁻¹ (∇ᵧg − ηₓ D²ᵧₓg ∇ₓf)

    (the paper's eq. with ηₓ = ηᵧ = η). Only x's system is solved; y's move follows from the local
    game's optimality condition Δy = −ηᵧ(∇ᵧg + D²ᵧₓg Δx), which is the second line exactly.

    **Learning rates.** η is the rule's ``eta`` when > 0, else each player's own optimizer learning
    rate (per run: the hyperparameter its class declares as ``learning_rate``, e.g. ``lr``). The
    rule hands the players the directions dₓ = −Δx/ηₓ and dᵧ = −Δy/ηᵧ, i.e.
    dₓ = (I − ηₓηᵧ D²ₓᵧf D²ᵧₓg)⁻¹(∇ₓf − ηᵧ D²ₓᵧf ∇ᵧg), dᵧ = ∇ᵧg − ηₓ D²ᵧₓg dₓ, as their
    "gradients": plain SGD with learning rate η then takes exactly the CGD step. Momentum or Adam
    act on these directions (not a method of the paper).

    **Linear solves** are matrix-free: the mixed blocks act through Hessian-vector products
    (``ctx.hvp``; D²ᵧₓg v is one product, so A v costs two), solved per run (own α, β, stop mask)
    by conjugate gradients until ‖residual‖ ≤ ``tol``·‖rhs‖ or ``max_iter`` iterations:

    - ``solver: cgnr`` (default, every game): CG on the normal equations AᵀAdₓ = Aᵀb (CGLS), with
      Aᵀ = I − ηₓηᵧ D²ₓᵧg D²ᵧₓf, also from Hessian-vector products. A general-sum game (the
      Dirac-GAN's ``nsgan`` loss, a penalty on fake samples) makes A non-symmetric, where plain CG
      is wrong; the normal equations are symmetric positive definite whenever A is invertible
      (at the price of a squared condition number). Four products per iteration.
    - ``solver: cg``: for games whose mixed blocks satisfy D²ᵧₓg = −(D²ₓᵧf)ᵀ, zero-sum games
      (g = −f: bilinear, Dirac ``gan``/``wgan``; penalties on the discriminator's own parameters,
      such as R1, keep it), where A = I + ηₓηᵧ BBᵀ (B = D²ₓᵧf) is symmetric positive definite and
      CG applies directly: two products per iteration, a better condition number. The rule does
      not check this: on other games ``cg`` is wrong.

    **Warm start** (``warm_start``): CG starts from the previous step's dₓ (kept in the state as
    ``cg_warm``, flat ``[R, n_gen]``; zero at step 0), with initial residual b − A x₀ (one more
    product with A). ``cg_iters`` in the state holds each run's iterations at the last step.

    **Differentiability** (``ctx.create_graph``). The iterative solve is differentiated as the
    exact solution d = A(z)⁻¹b(z), not through its iterations (through them, the derivative would
    be zero at an equilibrium, where b = 0 stops CG at once, and the stability analysis would see
    the identity). The solve d̂ = S(b) holds A fixed and has derivative A⁻¹ (its backward pass is
    a solve with Aᵀ, itself differentiable); the rule takes dₓ = d̂ + S₀(b − A(z)d̂), where S₀ has
    value 0 (the residual is already below the tolerance) and derivative A⁻¹. The sum has the
    value d̂ and the derivative A⁻¹(∂b − (∂A)d̂ − A∂d̂) + ∂d̂ = A⁻¹(∂b − (∂A)d), that of the exact
    solution. Costs in this mode only: 2 more products per step (A(z)d̂), counted; the solves of the
    backward pass run when the step is differentiated, after it has returned its counters, and are
    not counted.

    **Stochastic games.** Every loss evaluation of a step draws the same samples (the game's
    stream is rewound before each), so that CG sees one matrix.

    Cost per step: 1 gradient evaluation; Hessian-vector products: 2 (right-hand side and dᵧ),
    plus 2 per CG iteration (+2 for a warm start) with ``cg``, or 2 (Aᵀb) + 4 per iteration (+4 for
    a warm start) with ``cgnr`` (:meth:`hvps`); ``hvps_per_step`` records the average. Per run:
    the batch's CG loop runs until its slowest run has converged, but a run is counted for its own
    iterations (``cg_iters``), so its counts do not depend on its batch mates.

    Needs both players, and for ``eta`` 0 optimizers that declare their step size (checked when a
    study is loaded, :meth:`unmet`). On a game without a ``disc`` (e.g. ``gan1d`` with its optimal
    discriminator) it is simultaneous play, i.e. gradient descent. In a two-player game whose players
    have their own names (``tandem``'s ``p1``, ``p2``), x is the first player and y the second
    (:mod:`gamedyn.players`); CGD treats the two alike, up to that order. On xᵀy with SGD of learning
    rate η the iteration matrix is [[1, −η], [η, 1]]/(1 + η²), of spectral radius
    1/√(1 + η²) < 1: CGD converges for every η, where simultaneous play spirals out.
    """

    @classmethod
    def work(cls, config):
        return 2.0 + config["max_iter"]  # two Hessian-vector products per CG iteration, half of them

    params = {
        "eta": Param(float, 0.0, "η of the local game; 0: each player's optimizer learning rate",
                     low=0.0, per_run=True),
        "solver": Param(str, "cgnr", "linear solver: CG on the normal equations (any game) or CG "
                        "(zero-sum mixed blocks only)", choices=("cgnr", "cg")),
        "tol": Param(float, 1e-10, "CG stops when ‖residual‖ ≤ tol·‖right-hand side‖", low=0.0,
                     per_run=True),
        "max_iter": Param(int, 100, "most CG iterations per step", low=1),
        "warm_start": Param(bool, True, "start CG from the previous step's solution"),
    }

    needs = ("gen", "disc")
    fallback = "simultaneous"

    @classmethod
    def unmet(cls, config: Mapping[str, Any], players: tuple[str, ...],
              optimizers: Mapping[str, type]) -> str | None:
        """Besides both players: with ``eta`` 0, each player's optimizer must declare its step
        size (:attr:`gamedyn.optim.Optimizer.learning_rate`), which is then η."""
        problem = super().unmet(config, players, optimizers)
        if problem is None and not config.get("eta", 0.0) > 0 and not cls.missing(players):
            cast = roles(players)
            for player in (n if n in players else cast[n] for n in cls.needs):
                opt = optimizers.get(player)
                if opt is not None and opt.learning_rate is None:
                    return (f"rule 'cgd' takes η from each player's optimizer, but {player}'s "
                            f"optimizer {opt.name!r} declares no learning rate: set the rule's eta")
        return problem

    def init(self, ctx: Context, params: Params) -> State:
        state = super().init(ctx, params)
        state["cg_iters"] = torch.zeros_like(state["counts"]["hvps"])
        if self.warm_start:
            state["cg_warm"] = torch.zeros_like(tree.ravel(params[self.cast(ctx, "gen")[0]]))
        return state

    def etas(self, ctx: Context, params: Params) -> dict[str, Tensor]:
        """ηₓ, ηᵧ per run ``[R]``: the rule's ``eta`` where > 0, else the player's optimizer step size
        (the hyperparameter its class declares as ``learning_rate``; :meth:`unmet` checks, when a
        study is loaded, that there is one wherever ``eta`` is 0)."""
        like = tree.first(params)
        runs = like.shape[0]
        eta = torch.as_tensor(self.eta, dtype=like.dtype, device=like.device).expand(runs)
        out = {}
        for role, p in zip(("gen", "disc"), self.cast(ctx, "gen", "disc")):
            opt = ctx.optimizers[p]
            if opt.learning_rate is None:
                if not bool((eta > 0).all()):
                    raise ValueError(f"cgd: {p}'s optimizer {opt.name!r} declares no learning rate; "
                                     "set the rule's eta")
                out[role] = eta
                continue
            lr = torch.as_tensor(getattr(opt, opt.learning_rate), dtype=like.dtype, device=like.device)
            out[role] = torch.where(eta > 0, eta, lr.expand(runs))
        return out

    def system(self, ctx: Context, params: Params, c: Tensor, samples: SameSamples
               ) -> LinearSystem:
        """A = I − c D²ₓᵧf D²ᵧₓg (c = ηₓηᵧ, per run) at ``params``, as matvecs on flat ``[R, n_gen]``
        vectors through ``ctx``'s Hessian-vector products (and Aᵀ = I − c D²ₓᵧg D²ᵧₓf)."""
        G, D = self.cast(ctx, "gen", "disc")

        def block(loss: str, wrt: str, of: str, v: Tensor) -> Tensor:
            with samples():
                vector = tree.unravel(v, params[of])
                return tree.ravel(ctx.hvp(params, loss, wrt=wrt, of=of, vector=vector))

        def matvec(v: Tensor) -> Tensor:
            return v - c[:, None] * block(G, G, D, block(D, D, G, v))

        def rmatvec(v: Tensor) -> Tensor:
            return v - c[:, None] * block(D, G, D, block(G, D, G, v))

        return LinearSystem(matvec, rmatvec, self.solver, self.tol, self.max_iter)

    def hvps(self, iters: Tensor, create_graph: bool) -> Tensor:
        """Hessian-vector products of one step per run ``[R]``, given each run's CG iterations:
        right-hand side and dᵧ 2; ``cg``: 2 per iteration (+2 warm start); ``cgnr``: Aᵀb 2 and 4
        per iteration (+4 warm start); with ``create_graph`` A(z)d̂, 2 more."""
        if self.solver == "cg":
            per_iter, solve = 2, 2 * self.warm_start
        else:
            per_iter, solve = 4, 2 + 4 * self.warm_start
        return 2 + solve + 2 * create_graph + per_iter * iters

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        samples = SameSamples(ctx.game)
        G, D = self.cast(ctx, "gen", "disc")
        eta = self.etas(ctx, params)
        with samples():
            field = ctx.grad(params)
        gx, gy = tree.ravel(field[G]), tree.ravel(field[D])
        with samples():
            b_gy = tree.ravel(ctx.hvp(params, G, wrt=G, of=D, vector=field[D]))
        b = gx - eta["disc"][:, None] * b_gy

        c = eta["gen"] * eta["disc"]
        constant = self.system(ctx.with_graph(False), params, c, samples)
        x0 = state["cg_warm"] if self.warm_start else None
        zero = torch.zeros_like(c)
        dx, iters = _Solve.apply(constant, b, x0, zero)
        if ctx.create_graph:  # d = d̂ + S₀(b − A(z) d̂): derivative A⁻¹(∂b − (∂A) d)
            graph = self.system(ctx, params, c, samples)
            dx = dx + _Correction.apply(constant, b - graph.matvec(dx))

        with samples():
            c_dx = tree.ravel(ctx.hvp(params, D, wrt=D, of=G, vector=tree.unravel(dx, params[G])))
        dy = gy - eta["gen"][:, None] * c_dx
        grads = {G: tree.unravel(dx, params[G]), D: tree.unravel(dy, params[D])}
        params, opt = ctx.apply(grads, params, state["opt"])
        counts = count(state["counts"], grad_evals=1, hvps=self.hvps(iters, ctx.create_graph))
        new_state = {**state, "opt": opt, "cg_iters": iters, "counts": counts}
        if self.warm_start:
            new_state["cg_warm"] = dx
        return params, new_state
