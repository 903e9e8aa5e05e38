"""Local stability of an equilibrium under an update rule, from the Jacobian of one whole step.

A rule with its optimizers is a discrete dynamical system on the *full state*
x = (parameters z, rule state, optimizer state): x_{k+1} = F(x_k). At an equilibrium z* of the game
(ξ(z*) = 0, ξ = (∇_gen L_gen, ∇_disc L_disc)) with the state at its fixed point (what ``rule.init``
gives there: zero velocities, a zero field history), x* = F(x*), and by the linearisation theorem
(Ostrowski's theorem; restated for GAN training by Mescheder, Nowozin & Geiger 2017,
arXiv 1705.10461, §3) the iterates converge locally at a linear rate when the spectral radius
ρ(F′(x*)) < 1, and x* is unstable when ρ > 1 (generic nearby starts move away); ρ = 1 is undecided
by the linearisation (on a bilinear game the map *is* linear, and ρ = 1 means bounded cycling).
Near x*, ‖x_k − x*‖ grows or decays like ρᵏ (up to a polynomial factor when the top eigenvalue is
defective).

The Jacobian F′(x*) is obtained by automatic differentiation *through the rule's own step* (its
internal gradient evaluations use ``create_graph``), so any differentiable rule is covered without
deriving its iteration matrix. Examples of the closed forms it reproduces (SGD with learning rate η
on xᵀAy, σ the singular values of A, J = [[0, A], [−Aᵀ, 0]] the field's Jacobian):

- simultaneous: F′ = I − ηJ on z, eigenvalues 1 ∓ iησ, ρ = max √(1 + η²σ²) > 1 (Goodfellow 2014,
  arXiv 1412.6515, §4);
- alternating (gen first, A = 1): [[1, −η], [η, 1 − η²]], determinant 1, so ρ = 1 for η ≤ 2 and
  ρ > 1 for η > 2;
- heavy-ball momentum β adds the velocities to the state (4×4 for dim 1); alternating play with
  β < 0 can reach ρ < 1 (Gidel et al. 2019, arXiv 1807.04740).

**What counts as state.** The full state is the nested structure ``{"params": params, "state":
rule_state}`` (a :mod:`gamedyn.tree`). Its *state leaves* are the floating-point tensors whose
leading axis is the run axis (length R); they are flattened, per run, in the order of a depth-first
walk (dict insertion order, so gen's parameters, then disc's, then the rule state). Everything else
is a constant of the map, carried over unchanged from the point of linearisation: integer tensors —
the rule's cost counters ``state["counts"]`` (gradient evaluations and Hessian-vector products done
so far: bookkeeping, not dynamics), Adam's step count, ``best_response``'s ``inner_steps``,
``cgd``'s ``cg_iters`` — Python numbers, strings, and tensors without the run axis.

Runs are independent (every tensor has the run axis leading and the losses are per run), so all R
runs' n×n Jacobians come from the same n backward passes, one per output coordinate of the output
summed over runs. The result is exact up to floating point (no finite differences).

**Limitations.** The step must be differentiable (a rule that detaches, or evaluates its field under
``no_grad``, would give a wrong, silently truncated Jacobian). For a stochastic game (one that
samples from ``game.rng``), the Jacobian is that of one sampled step, drawn from stream
:data:`RNG_STREAM` of the game's streams (so the training noise is left as it was; the reverse
passes draw from it too, as ``cgd``'s backward solves evaluate the game); :func:`predict` then gives
NaN unless the sampled step still fixes the equilibrium. Only optimizers that declare themselves
``linearisable`` (:class:`gamedyn.optim.Optimizer`; SGD, with or without heavy-ball momentum) are
linearised by :func:`predict`: Adam and RMSProp have no fixed linearisation at a point of zero
gradient — their preconditioner 1/(√v + ε) depends on a history v that decays to 0 at the fixed
point, where √ is not differentiable, the map depends on the step count (Adam's bias correction),
and near the equilibrium the step η m/(√v + ε) is of the order of η however small the gradient
(sign-like, not linear). :func:`predict` gives NaN for them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from . import tree
from .component import Component
from .games.base import Game, Params
from .optim.base import Optimizer
from .random import Streams
from .regularizers.base import Regularizer
from .rules.base import Rule
from .rules.context import Context

Tensor = torch.Tensor
TreePath = tuple[Any, ...]

#: Above this many state coordinates per run, ``method="auto"`` uses the matrix-free eigensolver.
DENSE_MAX = 512
METHODS = ("auto", "dense", "matrix_free")
#: The stream of ``game.rng`` that a stochastic game samples from during the analysis: the training
#: (0) and recorder (1) streams are left untouched, so predicting never changes a trajectory.
RNG_STREAM = 2


# --- flattening nested states ---------------------------------------------------------------

@dataclasses.dataclass
class StateLayout:
    """Where each coordinate of a flattened state lives.

    ``template`` is the nested structure it came from (its non-state leaves are the map's constants);
    ``paths`` the key/index paths of the state leaves, ``shapes`` their per-run shapes (without the run
    axis), ``n_runs`` the run count R. The flat vector of one run has ``n`` entries.
    """

    template: Any
    paths: list[TreePath]
    shapes: list[tuple[int, ...]]
    n_runs: int

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s, dtype=np.int64)) for s in self.shapes]

    @property
    def n(self) -> int:
        return sum(self.sizes)

    def names(self) -> list[str]:
        """A readable name for each flat coordinate: ``params.gen.x[0]``, ``state.opt.gen.velocity.x[0]``…"""
        out = []
        for path, shape in zip(self.paths, self.shapes):
            base = ".".join(map(str, path))
            out += [f"{base}[{','.join(map(str, i))}]" if shape else base for i in np.ndindex(*shape)]
        return out


def is_state_leaf(x: Any, n_runs: int) -> bool:
    """Whether ``x`` is a state coordinate block: a floating tensor with a leading run axis of length R
    (integer tensors, such as the rule's cost counters, are not)."""
    return isinstance(x, Tensor) and x.is_floating_point() and x.dim() >= 1 and x.shape[0] == n_runs


def flatten_state(full: Any, n_runs: int) -> tuple[Tensor, StateLayout]:
    """The state leaves of a nested dict/list/tuple ``full``, concatenated per run: ``[R, n]``, and
    the layout to rebuild it (:func:`unflatten_state`). See the module docstring for what counts."""
    found = [(path, leaf) for path, leaf in tree.paths(full) if is_state_leaf(leaf, n_runs)]
    layout = StateLayout(full, [p for p, _ in found], [tuple(x.shape[1:]) for _, x in found], n_runs)
    if not found:
        return torch.zeros(n_runs, 0), layout
    return tree.ravel([x for _, x in found]), layout


def flatten_like(full: Any, layout: StateLayout) -> Tensor:
    """``full``'s leaves at ``layout``'s paths, flattened as :func:`flatten_state` would: ``[R, n]``.

    Raises ValueError if a path is missing or a leaf's shape differs (a step that changes the
    structure of its state)."""
    R = layout.n_runs
    blocks = []
    for path, shape in zip(layout.paths, layout.shapes):
        try:
            leaf = tree.get(full, path)
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"state leaf {'.'.join(map(str, path))} is missing after the step") from e
        if not isinstance(leaf, Tensor) or tuple(leaf.shape) != (R, *shape):
            raise ValueError(f"state leaf {'.'.join(map(str, path))} changed shape across the step")
        blocks.append(leaf)
    if not blocks:
        return torch.zeros(R, 0)
    return tree.ravel(blocks)


def unflatten_state(vec: Tensor, layout: StateLayout) -> Any:
    """The nested structure of ``layout.template`` with its state leaves read from ``vec`` ``[R, n]``
    (views into it, so gradients flow back to ``vec``) and its other leaves copied from the template."""
    where = dict(zip(layout.paths, tree.split(vec, layout.shapes)))
    return tree.unflatten(layout.template, [where.get(path, leaf)
                                            for path, leaf in tree.paths(layout.template)])


# --- helpers --------------------------------------------------------------------------------

def infer_runs(*components: Component | Mapping[str, Component] | None) -> int:
    """The run count R from the components' ``per_run`` hyperparameters (tensors ``[R]``); 1 if none."""
    sizes = set()
    for comp in components:
        for c in (comp.values() if isinstance(comp, Mapping) else [comp]):
            if c is None:
                continue
            for key, param in type(c).params.items():
                value = getattr(c, key, None)
                if param.per_run and isinstance(value, Tensor) and value.dim() == 1:
                    sizes.add(len(value))
    if len(sizes) > 1:
        raise ValueError(f"components disagree on the number of runs: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def equilibrium_params(game: Game, n_runs: int) -> Params:
    """The game's equilibrium repeated over ``n_runs`` runs (shapes ``[R, *shape]``).

    Raises ValueError when the game knows no equilibrium."""
    eq = game.equilibrium()
    if eq is None:
        raise ValueError(f"game {game.name!r} has no known equilibrium")
    return {pl: {k: v.expand(n_runs, *v.shape).clone() for k, v in named.items()}
            for pl, named in eq.items()}


def _analysis_rng(game: Game) -> Streams | None:
    """A fresh stream :data:`RNG_STREAM` of the game's per-run streams (None if it has none)."""
    return game.rng.fork(RNG_STREAM) if game.rng is not None else None


def _radius_dense(J: Tensor) -> np.ndarray:
    """max |eigenvalue| of each run's matrix ``[R, n, n]`` (NaN for a run with non-finite entries)."""
    A = J.detach().cpu().double().numpy()
    out = np.full(A.shape[0], np.nan)
    if A.shape[1] == 0:
        return np.zeros(A.shape[0])
    ok = np.isfinite(A).all(axis=(1, 2))
    if ok.any():
        out[ok] = np.abs(np.linalg.eigvals(A[ok])).max(-1)
    return out


# --- the step map ----------------------------------------------------------------------------

class StepMap:
    """One step of ``rule`` as a map F of the flattened full state ``[R, n]``, with its base point.

    ``x0`` is (``params``, default the game's equilibrium, with ``state``, default
    ``rule.init(ctx, params)``) flattened; R is ``params``' run axis, else ``n_runs``, else inferred
    from the per-run hyperparameters.
    ``ctx`` is a ``Context(game, optimizers, create_graph=True, regularizer=...)`` so that F is
    differentiable. ``layout.names()`` names the coordinates.
    """

    def __init__(self, game: Game, rule: Rule, optimizers: dict[str, Optimizer], *,
                 regularizer: Regularizer | None = None, params: Params | None = None,
                 n_runs: int | None = None, state: Any = None) -> None:
        if params is not None:
            R = tree.n_runs(params)
        else:
            R = n_runs or infer_runs(game, rule, optimizers, regularizer)
            params = equilibrium_params(game, R)
        self.game, self.rule, self.n_runs = game, rule, R
        self.ctx = Context(game, optimizers, create_graph=True, regularizer=regularizer)
        self.rng = _analysis_rng(game)
        if state is None:
            with torch.enable_grad(), game.using(self.rng):
                state = rule.init(self.ctx, params)
        x0, self.layout = flatten_state({"params": params, "state": state}, R)
        self.x0 = x0.detach()
        self._graph: tuple[Tensor, Tensor] | None = None
        self._jvp_graph: tuple[Tensor, Tensor] | None = None

    @property
    def n(self) -> int:
        """State coordinates per run."""
        return self.layout.n

    def __call__(self, x: Tensor) -> Tensor:
        """F(x) for a flat state ``x`` ``[R, n]`` (differentiable in ``x``)."""
        full = unflatten_state(x, self.layout)
        with torch.enable_grad(), self.game.using(self.rng):
            params, state = self.rule.step(self.ctx, full["params"], full["state"])
        return flatten_like({"params": params, "state": state}, self.layout)

    def _forward(self) -> tuple[Tensor, Tensor]:
        """(u, F(u)) at u = x0 with the graph kept, built once."""
        if self._graph is None:
            with torch.enable_grad():
                u = self.x0.clone().requires_grad_(True)
                self._graph = (u, self(u))
        return self._graph

    def residual(self) -> np.ndarray:
        """Per run, max |F(x0) − x0| / (1 + max |x0|): zero when x0 is a fixed point."""
        _, out = self._forward()
        diff = (out.detach() - self.x0).abs().amax(1) if self.n else torch.zeros(self.n_runs)
        scale = 1 + (self.x0.abs().amax(1) if self.n else torch.zeros(self.n_runs))
        return (diff / scale).cpu().double().numpy()

    def jacobian(self) -> Tensor:
        """F′(x0) for every run, ``[R, n, n]`` (row i: ∂F_i/∂x), by n reverse-mode passes over the
        output summed over runs (runs are independent, so row i of every run comes at once)."""
        u, out = self._forward()
        R, n = out.shape
        J = torch.zeros(R, n, n, dtype=self.x0.dtype, device=self.x0.device)
        if not out.requires_grad:
            return J
        with torch.enable_grad(), self.game.using(self.rng):  # a backward pass may evaluate the
            for i in range(n):                                # game (cgd's solves): same stream
                (g,) = torch.autograd.grad(out[:, i].sum(), u, retain_graph=True, allow_unused=True)
                if g is not None:
                    J[:, i] = g
        return J

    def jvp(self, v: Tensor) -> Tensor:
        """F′(x0) v for a batch of tangents ``v`` ``[R, n]`` (each run its own), matrix-free.

        By the double-backward trick: with w a dummy cotangent, g(w) = F′ᵀw is built once (one
        reverse pass with ``create_graph``), and F′v = ∂⟨g(w), v⟩/∂w, one more reverse pass."""
        if self._jvp_graph is None:
            u, out = self._forward()
            with torch.enable_grad(), self.game.using(self.rng):
                w = torch.zeros_like(out, requires_grad=True)
                (g,) = torch.autograd.grad((out * w).sum(), u, create_graph=True, allow_unused=True)
            self._jvp_graph = (w, g)
        w, g = self._jvp_graph
        if g is None or not g.requires_grad:
            return torch.zeros_like(v)
        with torch.enable_grad(), self.game.using(self.rng):
            (jv,) = torch.autograd.grad((g * v.to(g)).sum(), w, retain_graph=True,  # ⟨g, v⟩:
                                        allow_unused=True)   # no grad_outputs (lyapunov._vjps)
        return torch.zeros_like(v) if jv is None else jv.detach()

    def spectral_radius(self, method: str = "auto", dense_max: int = DENSE_MAX, k: int = 6,
                        tol: float = 0.0, maxiter: int | None = None) -> np.ndarray:
        """ρ(F′(x0)) per run, ``[R]``.

        ``method="dense"`` builds F′ (:meth:`jacobian`) and takes numpy's eigenvalues;
        ``"matrix_free"`` runs ARPACK (``scipy.sparse.linalg.eigs``, the ``k`` eigenvalues of
        largest modulus, ``tol``/``maxiter`` passed on) on a ``LinearOperator`` whose matvec is
        :meth:`jvp`, one run at a time (each matvec costs one reverse pass over all runs: this is
        analysis, not a hot path); ``"auto"`` picks dense when n ≤ ``dense_max``. Matrix-free needs
        n ≥ 3 and falls back to dense below that. A run where ARPACK does not converge gets the
        largest modulus among the eigenvalues that did (NaN if none; with a warning).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        if method == "auto":
            method = "dense" if self.n <= dense_max else "matrix_free"
        if method == "dense" or self.n < 3:
            return _radius_dense(self.jacobian())
        return self._radius_arpack(min(k, self.n - 2), tol, maxiter)

    def _radius_arpack(self, k: int, tol: float, maxiter: int | None) -> np.ndarray:
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

        R, n = self.n_runs, self.n
        out = np.full(R, np.nan)
        v0 = np.random.default_rng(0).standard_normal(n)
        for r in range(R):
            def matvec(v: np.ndarray, r: int = r) -> np.ndarray:
                V = torch.zeros(R, n, dtype=self.x0.dtype, device=self.x0.device)
                V[r] = torch.as_tensor(np.real(np.asarray(v)).reshape(-1), dtype=self.x0.dtype)
                return self.jvp(V)[r].cpu().double().numpy()

            op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
            try:
                vals = eigs(op, k=k, which="LM", v0=v0, tol=tol, maxiter=maxiter,
                            return_eigenvectors=False)
            except ArpackNoConvergence as e:
                warnings.warn(f"ARPACK did not converge for run {r}; {len(e.eigenvalues)} of {k} "
                              f"eigenvalues converged", RuntimeWarning, stacklevel=3)
                vals = e.eigenvalues
            if len(vals) and np.all(np.isfinite(vals)):
                out[r] = np.abs(vals).max()
        return out


# --- public functions ------------------------------------------------------------------------

def step_jacobian(game: Game, rule: Rule, optimizers: dict[str, Optimizer], *,
                  regularizer: Regularizer | None = None, params: Params | None = None,
                  n_runs: int | None = None) -> Tensor:
    """F′(x*) ``[R, n, n]``: the Jacobian of one step of ``rule`` (with ``optimizers``, and the study's
    ``regularizer``) on the full state (params, rule state, optimizer state), at the game's
    equilibrium (or at ``params``) with the state that ``rule.init`` gives there.

    Coordinates are ordered as :class:`StateLayout` says (``StepMap(...).layout.names()``). R is
    ``n_runs``, or taken from the components' per-run hyperparameters. Exact (reverse-mode autograd
    through the rule's step, n backward passes for all runs together).
    """
    return StepMap(game, rule, optimizers, regularizer=regularizer, params=params,
                   n_runs=n_runs).jacobian()


def spectral_radius(game: Game, rule: Rule, optimizers: dict[str, Optimizer], *,
                    regularizer: Regularizer | None = None, params: Params | None = None,
                    n_runs: int | None = None, method: str = "auto", dense_max: int = DENSE_MAX,
                    k: int = 6, tol: float = 0.0, maxiter: int | None = None) -> np.ndarray:
    """ρ(F′(x*)) per run ``[R]``, F′ as in :func:`step_jacobian`.

    ``method``: ``"dense"`` (numpy eigenvalues of the full Jacobian), ``"matrix_free"``
    (Jacobian-vector products and ARPACK, see :meth:`StepMap.spectral_radius`), or ``"auto"``:
    dense when the state has at most ``dense_max`` coordinates per run.
    """
    step = StepMap(game, rule, optimizers, regularizer=regularizer, params=params, n_runs=n_runs)
    return step.spectral_radius(method, dense_max, k, tol, maxiter)


def field_jacobian(game: Game, *, regularizer: Regularizer | None = None,
                   params: Params | None = None, n_runs: int = 1) -> Tensor:
    """∂ξ/∂z ``[R, m, m]`` at the equilibrium (or ``params``), ξ = (∇_gen L_gen, ∇_disc L_disc) the
    simultaneous field, z the m parameters per run (gen's then disc's), column j from
    :meth:`Context.field_jvp` on the j-th basis vector (all runs at once)."""
    if params is None:
        params = equilibrium_params(game, n_runs)
    R = tree.n_runs(params)
    ctx = Context(game, {}, regularizer=regularizer)
    x0, layout = flatten_state(params, R)
    cols = []
    for j in range(layout.n):
        e = torch.zeros_like(x0)
        e[:, j] = 1
        with torch.enable_grad(), game.using(_analysis_rng(game)):  # same samples for every column
            cols.append(flatten_like(ctx.field_jvp(params, unflatten_state(e, layout)), layout))
    if not cols:
        return torch.zeros(R, 0, 0, dtype=x0.dtype)
    return torch.stack(cols, dim=-1).detach()


def field_eigenvalues(game: Game, *, regularizer: Regularizer | None = None,
                      params: Params | None = None, n_runs: int = 1) -> np.ndarray:
    """Eigenvalues of the field's Jacobian ∂ξ/∂z at the equilibrium, ``[R, m]`` complex.

    For gradient *flow* ż = −ξ(z), eigenvalues with positive real part attract, purely imaginary
    ones (±i f′(0) on the Dirac-GAN, ±iσ(A) on xᵀAy) give no damping (Mescheder, Nowozin & Geiger
    2017, arXiv 1705.10461, §3; Mescheder, Geiger & Nowozin 2018, arXiv 1801.04406, §2)."""
    J = field_jacobian(game, regularizer=regularizer, params=params, n_runs=n_runs)
    return np.linalg.eigvals(J.cpu().double().numpy())


def linearisable(optimizer: Optimizer) -> bool:
    """Whether ``predict`` linearises a rule using this optimizer (its class declares
    ``linearisable``, see :class:`gamedyn.optim.Optimizer`)."""
    return type(optimizer).linearisable


def predict(game: Game, rule: Rule, optimizers: dict[str, Optimizer], *,
            regularizer: Regularizer | None = None, n_runs: int | None = None,
            method: str = "auto", strict: bool = False) -> np.ndarray:
    """The predicted spectral radius ρ per run ``[R]`` of one step at the game's equilibrium: < 1
    locally convergent (distance ~ ρᵏ), > 1 locally divergent, = 1 undecided (cycling on linear games).

    NaN for every run when the game knows no equilibrium or an optimizer is not ``linearisable``
    (Adam, RMSProp: no fixed linearisation, see the module docstring), and for a run whose equilibrium is
    not a fixed point of the step (relative residual above √(machine ε)·10, e.g. a regularizer that
    moves the equilibrium). Other failures (a non-differentiable rule) give NaN and a warning, or
    raise with ``strict=True``. Meant to be called by the batch runner with the built components::

        rows["predicted_radius"] = stability.predict(game, rule, optimizers,
                                                     regularizer=regularizer, n_runs=len(runs))
    """
    R = n_runs or infer_runs(game, rule, optimizers, regularizer)
    nan = np.full(R, np.nan)
    if game.equilibrium() is None or not all(linearisable(o) for o in optimizers.values()):
        return nan
    try:
        step = StepMap(game, rule, optimizers, regularizer=regularizer, n_runs=R)
        rho = step.spectral_radius(method)
        tol = 10 * float(np.sqrt(torch.finfo(step.x0.dtype).eps))
        rho[~(step.residual() <= tol)] = np.nan
        return rho
    except Exception as e:  # analysis must not take a study down
        if strict:
            raise
        warnings.warn(f"stability prediction failed: {type(e).__name__}: {e}", RuntimeWarning,
                      stacklevel=2)
        return nan
