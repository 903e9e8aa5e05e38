"""Finite-time Lyapunov exponents of a run's discrete dynamics, by the QR method of Benettin et al.

A rule with its optimizers is a map x ↦ F(x) of the full state x = (parameters, rule state,
optimizer state) (:mod:`gamedyn.stability`, whose :class:`~gamedyn.stability.StepMap` and state
layout this module reuses). Along an orbit x₀, x₁ = F(x₀), …, tangent vectors move by the step
Jacobian, v ↦ F′(x_t) v. Benettin, Galgani, Giorgilli & Strelcyn (1980, Meccanica 15, 9–30; for maps
as in Eckmann & Ruelle 1985, Rev. Mod. Phys. 57, 617, §III.A) propagate an orthonormal frame Q of p
tangent vectors and re-orthonormalise it by a QR factorisation every k steps,

    Q ← F′(x_{t+k−1}) ⋯ F′(x_t) Q = Q′ R,    S_i += log |R_ii|,

and the finite-time exponents (per step) are the least-squares slopes λ_i of S_i(t) against t at
the re-orthonormalisation times over H steps, with their standard errors (from the residuals), i =
1…p, reported in decreasing order. On an exponential orbit S_i is linear in t and the slope is
S_i(H)/H, Benettin's estimate; on a neutral orbit whose tangent growth oscillates within bounds (a
non-normal rotation: alternating play with several discriminator steps), S_i(H)/H errs by up to
log κ/H, κ the condition number of the eigenvectors, and the slope by O(1/H²) once H spans a few
periods. The sums start after a first interval of k steps (not counted) in which the frame
turns from the coordinate axes towards the directions the dynamics selects: without it, a
coordinate that one step slaves to the others (the velocity of SGD without momentum, which is the
last gradient) adds a transient O(1)/H to every exponent. λ₁ + … + λ_p is the growth rate of
p-dimensional volumes, so the frame gives the p leading exponents. Re-orthonormalising only keeps
the frame from collapsing onto the leading direction and its entries from overflowing: the result
does not depend on k (up to rounding) as long as the k-step growth stays within floating point.

What the exponents say about a run (Eckmann & Ruelle 1985, §II): convergence to a fixed point x*
has λ_i = log |μ_i| for μ_i the eigenvalues of F′(x*) (so λ₁ < 0); a linear map has them from the
start (simultaneous SGD with rate η on x·y: F′ = [[1, −η], [η, 1]], |μ| = √(1 + η²), λ₁ = λ₂ =
½ log(1 + η²)); linear divergence at rate ρ has λ₁ = log ρ > 0; a stable limit cycle has λ₁ ≈ 0
(along the cycle, tangent vectors neither grow nor shrink) with the others negative; a neutral
orbit of a linear centre (alternating play on x·y, det F′ = 1 and |μ| = 1) has λ₁ = λ₂ = 0.

Where on the orbit
------------------
:func:`exponents` follows the map from a given full state for H steps. A batch
(:mod:`gamedyn.batch`) starts it from each run's *last* state, where its label was decided, and
steps the map on, beside the run (its parameters are not changed and nothing is recorded): the
exponents are those of what the run settled on. The training trajectory itself is stepped in
compiled chunks and not kept, and a continuation has a bounded cost: H steps, each one forward
evaluation of the step with its graph and one batched reverse pass for the p tangents. A stochastic
game draws the continuation's samples from the analysis stream
:data:`gamedyn.stability.RNG_STREAM`, never from the training stream. Non-state leaves of the state
(integer cost counters, step counts) are held at their value at the start (as in
:mod:`gamedyn.stability`). A run whose state is not finite at the start or becomes so gets NaN.

Everything is computed over the run axis: a run's exponents do not depend on its batch.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from . import tree
from .errors import StudyError, unknown
from .games.base import Game, Params
from .optim.base import Optimizer
from .regularizers.base import Regularizer
from .rules.base import Rule
from .stability import StepMap, linearisable

Tensor = torch.Tensor

#: A study's ``lyapunov:`` defaults: re-orthonormalise every ``every`` steps, over ``steps`` steps
#: of continuation from each run's last state.
DEFAULTS: dict[str, int] = {"every": 5, "steps": 20}
ACCEPTED = ("'off', or a mapping {every: k, steps: H} of integers >= 1 (defaults: every "
            f"{DEFAULTS['every']}, steps {DEFAULTS['steps']})")
#: Without a ``lyapunov:`` key, exponents are computed for games with at most this many parameters
#: per run (both players together), under rules of at most :data:`MAX_WORK` evaluations per step
#: (``Rule.work``: differentiating a step through inner loops — ``cgd``'s and ``lss``'s conjugate
#: gradients, ``best_response``, ``unrolled`` — costs that many times a simple step's Jacobian).
MAX_PARAMS = 100
MAX_WORK = 10
#: Up to this many state coordinates per run the whole spectrum is computed (column ``lyapunov``);
#: above, the leading exponent only.
SPECTRUM_MAX = 8


def validate(given: Any, key: str = "lyapunov") -> dict[str, int] | str:
    """A study's ``lyapunov:`` value checked: ``"off"``, or the mapping with defaults filled in."""
    if given == "off" or given is False:
        return "off"
    if not isinstance(given, dict):
        raise StudyError(key, f"{given!r} is not accepted: expected {ACCEPTED}")
    out = dict(DEFAULTS)
    for name, value in given.items():
        if name not in DEFAULTS:
            raise unknown(f"{key}.{name}", "key", name, DEFAULTS)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise StudyError(f"{key}.{name}", f"{value!r} is not accepted: expected an integer >= 1")
        out[name] = value
    return out


def setting(given: dict[str, int] | str | None, game: Game, work: float = 1.0
            ) -> dict[str, int] | None:
    """What a batch computes: None (no exponents) for ``"off"``; the given mapping; or, when the
    study says nothing (``given`` None), :data:`DEFAULTS` for a game with at most
    :data:`MAX_PARAMS` parameters per run under a rule of at most :data:`MAX_WORK` evaluations per
    step (``work``), else None."""
    if given == "off":
        return None
    if given is None:
        return dict(DEFAULTS) if game.n_params() <= MAX_PARAMS and work <= MAX_WORK else None
    return dict(given)


def exponents(step: StepMap, steps: int, every: int, n_exponents: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_exponents`` (default: all, up to the state size) leading finite-time Lyapunov
    exponents per step of the map ``step`` (a :class:`~gamedyn.stability.StepMap`) from its base
    point ``step.x0``, over ``steps`` steps after one interval of alignment, re-orthonormalising
    every ``every`` steps, and their standard errors (see the module docstring): two arrays
    ``[R, p]``, decreasing along each row of the first. NaN for a run whose state or frame stops
    being finite; −∞ for a direction the map annihilates (F′ singular: a coordinate slaved to the
    others)."""
    R, n = step.n_runs, step.n
    p = n if n_exponents is None else min(n_exponents, n)
    if p == 0:
        return np.zeros((R, 0)), np.zeros((R, 0))
    x = step.x0
    eye = torch.eye(n, p, dtype=x.dtype, device=x.device)
    Q = eye.expand(R, n, p).clone()
    S = torch.zeros(R, p, dtype=torch.float64, device=x.device)
    ok = torch.isfinite(x).all(1)
    warm = every   # one interval to align the frame, not counted (see the module docstring)
    times, sums = [0], [S.clone()]
    for t in range(1, warm + steps + 1):
        x, Q = _advance(step, x, Q)
        ok &= torch.isfinite(x).all(1)
        if t % every == 0 or t == warm + steps:
            ok &= torch.isfinite(Q).all(2).all(1)
            Q, Rm = torch.linalg.qr(torch.where(ok[:, None, None], Q, eye))
            if t > warm:
                S = S + torch.log(torch.diagonal(Rm, dim1=1, dim2=2).abs().double())
                times.append(t - warm)
                sums.append(S)
            x = torch.where(ok[:, None], x, step.x0)   # a lost run walks on from a finite point
    lam, se = _slope(np.asarray(times, dtype=float), torch.stack(sums).cpu().numpy())
    lost = ~ok.cpu().numpy()
    lam[lost], se[lost] = np.nan, np.nan
    order = np.argsort(-np.where(np.isnan(lam), -np.inf, lam), axis=1, kind="stable")
    return np.take_along_axis(lam, order, 1), np.take_along_axis(se, order, 1)


def _slope(t: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of ``S`` [m, R, p] against ``t`` [m] and its standard error
    √(Σ residual² / (m − 2) / Σ (t − t̄)²) (NaN for m ≤ 2); −∞ (error 0) where S reaches −∞."""
    dt = t - t.mean()
    sxx = (dt * dt).sum()
    with np.errstate(invalid="ignore"):
        slope = np.einsum("m,mrp->rp", dt, S - S.mean(0)) / sxx
        res = S - S.mean(0) - slope[None] * dt[:, None, None]
        m = len(t)
        se = np.sqrt((res**2).sum(0) / (m - 2) / sxx) if m > 2 else np.full(slope.shape, np.nan)
    dead = np.isneginf(S[-1])
    return np.where(dead, -np.inf, slope), np.where(dead, 0.0, se)


def _advance(step: StepMap, x: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
    """(F(x), F′(x) Q) for every run: one forward pass with its graph, then the p products. When the
    frame spans the whole space (p = n), F′'s rows come from n reverse passes (a cotangent per output
    coordinate, all runs at once) and F′Q is a matrix product; otherwise F′Q comes by the
    double-backward trick (:meth:`StepMap.jvp`), a reverse pass per tangent."""
    R, n, p = Q.shape
    with torch.enable_grad(), step.game.using(step.rng):
        u = x.detach().requires_grad_(True)
        out = step(u)
        if not out.requires_grad:   # F does not depend on x (constant map): F′ = 0
            return out.detach(), torch.zeros_like(Q)
        if p == n:
            eye = torch.eye(n, dtype=out.dtype, device=out.device)[:, None, :].expand(n, R, n)
            rows = _vjps(out, u, eye)               # [n, R, n]: row i of every run's F′
            JQ = rows.permute(1, 0, 2) @ Q
        else:
            w = torch.zeros_like(out, requires_grad=True)
            (g,) = torch.autograd.grad((out * w).sum(), u, create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:
                return out.detach(), torch.zeros_like(Q)
            JQ = _vjps(g, w, Q.permute(2, 0, 1)).permute(1, 2, 0)
    return out.detach(), JQ.detach()


def _vjps(out: Tensor, wrt: Tensor, cotangents: Tensor) -> Tensor:
    """``[m, *wrt.shape]``: the vector-Jacobian products of ``out`` with each of the m
    ``cotangents`` (``[m, *out.shape]``), one reverse pass each (m ≤ :data:`SPECTRUM_MAX`; for
    such tiny tensors autograd's vmapped pass, ``is_grads_batched``, is slower than the loop).
    Each product is the gradient of ⟨out, c⟩, whose backward hands ``out`` exactly ``c``: the same
    numbers as ``grad_outputs=c``, which imports sympy (half a second) on its first use in a
    process."""
    rows = []
    for c in cotangents:
        (g,) = torch.autograd.grad((out * c).sum(), wrt, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(wrt) if g is None else g)
    return torch.stack(rows)


def run_exponents(game: Game, rule: Rule, optimizers: dict[str, Optimizer], params: Params,
                  state: Any, config: dict[str, int] | None, *,
                  regularizer: Regularizer | None = None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The exponents and their standard errors (:func:`exponents`, ``[R, p]`` each) of a batch's
    runs from their state (``params``, rule ``state``) as ``config`` ({every, steps}, or None: not
    computed) says; p = the state size up to :data:`SPECTRUM_MAX`, else 1. None when not computed,
    or when an optimizer is not ``linearisable`` (Adam, RMSProp: their preconditioner has no
    derivative where the gradient's history vanishes, see :mod:`gamedyn.stability`). A failure of
    the analysis warns and gives NaN: it never takes the batch down."""
    if config is None or not all(linearisable(o) for o in optimizers.values()):
        return None
    R = tree.n_runs(params)
    try:
        step = StepMap(game, rule, optimizers, regularizer=regularizer, params=params, state=state)
        p = step.n if step.n <= SPECTRUM_MAX else 1
        return exponents(step, config["steps"], config["every"], p)
    except Exception as e:  # analysis must not take a study down
        warnings.warn(f"Lyapunov exponents failed: {type(e).__name__}: {e}", RuntimeWarning,
                      stacklevel=2)
        return np.full((R, 1), np.nan), np.full((R, 1), np.nan)
