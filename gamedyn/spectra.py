"""Spectra and rotation along training: the game Jacobian's eigenvalues, its potential/Hamiltonian
split, the update map's eigenvalues, and the path-angle, all over the run axis.

At a point z of a game with simultaneous field ξ(z) = (∇_gen L_gen, ∇_disc L_disc), H = ∂ξ/∂z is
the game Jacobian (:func:`gamedyn.stability.field_jacobian`, exact, one Jacobian-vector product per
coordinate). What it says:

- **Rotation** (Mescheder, Nowozin & Geiger 2017, arXiv 1705.10461, §3): gradient play
  ż = −ξ(z) is attracted along eigenvalues λ of H with Re λ > 0 and rotates along Im λ; an
  eigenvalue with small real and large imaginary part makes the discrete steps spiral or cycle.
  :func:`summary` gives the largest real part, the largest |Im λ|, and the *rotation index*
  max |Im λ / Re λ| (∞ where an eigenvalue with Im λ ≠ 0 has Re λ = 0).
- **Potential/Hamiltonian split** (Balduzzi et al. 2018, "The Mechanics of n-Player Differentiable
  Games", arXiv 1802.05642, §3): H = S + A with S = (H + Hᵀ)/2 symmetric and A = (H − Hᵀ)/2
  antisymmetric. A potential game (ξ = ∇φ) has A = 0; a Hamiltonian game (zero-sum bilinear) has
  S = 0. The two parts are orthogonal in the Frobenius inner product, ‖H‖² = ‖S‖² + ‖A‖², so
  ``A_share`` = ‖A‖²/‖H‖² is the share of rotation in the game's linear part. Along the field,
  ⟨ξ, Sξ⟩ = ⟨ξ, Hξ⟩ (gradient flow changes ½‖ξ‖² at the rate −⟨ξ, Sξ⟩) while ⟨ξ, Aξ⟩ = 0 for
  every ξ (A is antisymmetric), so the rotation's size along the field is reported as ‖Aξ‖ (the
  term that symplectic gradient adjustment adds, Aᵀξ), beside ‖Sξ‖.
- **Update map**: the eigenvalues of the Jacobian F′ of one whole step of the rule with its
  optimizers (:class:`gamedyn.stability.StepMap`), whose moduli say whether the discrete
  iteration contracts (|μ| < 1) near that point.
- **Path-angle** (Berard et al. 2020, "A Closer Look at the Optimization Landscapes of Generative
  Adversarial Networks", ICLR 2020, arXiv 1906.04848, §4): on the straight line
  θ_α = (1 − α)θ₁ + αθ₂ between two checkpoints, the cosine between the joint field v(θ_α) = ξ(θ_α)
  and the line's direction θ₁ − θ₂, and ‖v‖², for α ∈ [−0.1, 1.1] (:func:`path_angle`). Near a
  locally stable point the cosine crosses zero with the norm at a minimum; rotation shows as a
  cosine near 0 along the whole path (the field turns around the line instead of along it).

**Neural players.** The dense H costs one Jacobian-vector product per parameter, hopeless for
networks (tens of thousands of parameters per run). :func:`top_eigenvalues` gives the k eigenvalues
of largest modulus matrix-free instead, by thick-restarted Arnoldi (:mod:`gamedyn.arnoldi`) on the
operator v ↦ Hv of :func:`field_operator` (one product for all runs per Krylov step, some tens to
hundreds of products in all), and :func:`field_decomposition` the split along the field from Hξ and
Hᵀξ alone. :func:`at` switches to them with ``k``, or by itself above
:data:`gamedyn.stability.DENSE_MAX` parameters per run.

:func:`along` computes these at chosen record steps of a finished study, from its recorded
coordinates (small players record every parameter, :mod:`gamedyn.record`): post hoc, so training is
untouched and a study pays nothing unless asked. The update map is linearised there with the state
``rule.init`` gives at those parameters (zero momentum, the field at that point as history): exact
for stateless rules with plain SGD, and the training state itself at fixed points.

**In the runs table** (a study's ``spectra:`` key, :func:`validate`): players whose parameters are
not all recorded (networks) cannot be reached post hoc, so a batch computes :func:`at` itself, in
the worker, at each run's *final* state, all runs of the batch at once (:func:`run_columns`, as the
Lyapunov exponents are computed from the end, :mod:`gamedyn.lyapunov`): the summary and split
columns, the eigenvalues as JSON text, and with ``update_map: true`` the update map's at the run's
own final rule and optimizer state. Everything is drawn from the analysis stream
:data:`gamedyn.stability.RNG_STREAM`, so training is the same bit for bit with and without the key.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import arnoldi, tree
from .errors import StudyError, unknown
from .games.base import Game, Params
from .optim.base import Optimizer
from .regularizers.base import Regularizer
from .rules.base import Rule
from .rules.context import Context
from .stability import (
    DENSE_MAX,
    StepMap,
    _analysis_rng,
    field_jacobian,
    flatten_like,
    flatten_state,
    linearisable,
    unflatten_state,
)

Tensor = torch.Tensor
#: How many eigenvalues :func:`at` gives by Arnoldi where it chooses to itself (more than
#: :data:`gamedyn.stability.DENSE_MAX` parameters per run and no ``k``).
TOP_K = 6
#: The path-angle's default α: from −0.1 to 1.1 (Berard et al. 2020).
ALPHAS = np.linspace(-0.1, 1.1, 49)
#: A study's ``spectra: on``: ``k`` None (every eigenvalue, dense, up to
#: :data:`gamedyn.stability.DENSE_MAX` parameters per run; above, the top :data:`TOP_K` by
#: Arnoldi), no update map.
DEFAULTS: dict[str, Any] = {"k": None, "update_map": False}
ACCEPTED = ("'off' (the default), 'on', or a mapping {k: an integer >= 1 (the top k eigenvalues "
            "by Arnoldi), update_map: true or false}")


def eigenvalues(J: Tensor) -> Tensor:
    """The eigenvalues ``[R, n]`` (complex) of each run's matrix ``J`` ``[R, n, n]``
    (``torch.linalg.eigvals``), sorted per run by decreasing real part, then decreasing imaginary
    part (so conjugate pairs are adjacent, +Im first); NaN for a run whose matrix is not finite."""
    ok = torch.isfinite(J).all(-1).all(-1)
    safe = torch.where(ok[:, None, None], J, torch.zeros_like(J))
    lam = _sorted(torch.linalg.eigvals(safe))
    return torch.where(ok[:, None], lam, torch.full_like(lam, complex(np.nan, np.nan)))


def _sorted(lam: Tensor) -> Tensor:
    """Eigenvalues ``[R, n]`` sorted per run as :func:`eigenvalues` sorts them."""
    re, im = lam.real.numpy(), lam.imag.numpy()
    order = np.lexsort((-np.round(im, 12), -np.round(re, 12)), axis=-1)
    return torch.as_tensor(np.take_along_axis(lam.numpy(), order, -1))


def summary(lam: Tensor) -> dict[str, np.ndarray]:
    """Per run [R], of eigenvalues ``lam`` ``[R, n]``: ``re_max`` = max Re λ, ``im_max`` =
    max |Im λ|, and ``rotation_index`` = max |Im λ / Re λ| (Mescheder et al. 2017; 0 for a real
    spectrum, ∞ where an eigenvalue with Im λ ≠ 0 has Re λ = 0)."""
    re, im = lam.real.numpy(), lam.imag.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(im == 0, 0.0, np.abs(im) / np.abs(re))
    return {"re_max": re.max(-1), "im_max": np.abs(im).max(-1), "rotation_index": ratio.max(-1)}


def decomposition(H: Tensor, xi: Tensor) -> dict[str, np.ndarray]:
    """The potential/Hamiltonian split of H ``[R, m, m]`` at the field ξ ``[R, m]`` (Balduzzi et
    al. 2018; see the module docstring), per run [R]: ``S_norm`` = ‖S‖_F, ``A_norm`` = ‖A‖_F,
    ``A_share`` = ‖A‖²/‖H‖² (NaN where H = 0), ``xi_S_xi`` = ⟨ξ, Sξ⟩, ``S_xi_norm`` = ‖Sξ‖,
    ``A_xi_norm`` = ‖Aξ‖ (⟨ξ, Aξ⟩ vanishes identically)."""
    S = (H + H.transpose(-1, -2)) / 2
    A = (H - H.transpose(-1, -2)) / 2
    s2, a2 = (S ** 2).sum((-1, -2)), (A ** 2).sum((-1, -2))
    Sxi, Axi = (S @ xi[..., None])[..., 0], (A @ xi[..., None])[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (a2 / (s2 + a2)).numpy()
    return {"S_norm": s2.sqrt().numpy(), "A_norm": a2.sqrt().numpy(), "A_share": share,
            "xi_S_xi": (xi * Sxi).sum(-1).numpy(), "S_xi_norm": Sxi.norm(dim=-1).numpy(),
            "A_xi_norm": Axi.norm(dim=-1).numpy()}


def field(game: Game, params: Params, regularizer: Regularizer | None = None) -> Tensor:
    """The simultaneous field ξ at ``params``, flattened per run ``[R, m]`` (gen's coordinates,
    then disc's, as :func:`gamedyn.stability.field_jacobian` orders them). A stochastic game draws
    its samples from a fresh analysis stream, the ones H is built on: every call at any point sees
    the same samples (common random numbers along :func:`path_angle`'s line), and the training
    stream is not touched."""
    ctx = Context(game, {}, regularizer=regularizer)
    with torch.enable_grad(), game.using(_analysis_rng(game)):
        return tree.ravel(tree.detach(ctx.grad(params)))


def field_operator(game: Game, params: Params, regularizer: Regularizer | None = None,
                   reuse_graph: bool = True) -> tuple[Callable[[Tensor], Tensor], int]:
    """The game Jacobian H = ∂ξ/∂z at ``params`` as a batched matvec ``[R, m]`` → ``[R, m]`` (row r
    through run r's H, coordinates as :func:`gamedyn.stability.field_jacobian` orders them), with m.

    A stochastic game draws its samples from the analysis stream
    :data:`gamedyn.stability.RNG_STREAM`, the same for every product, so that every product is of
    the matrix ``field_jacobian`` builds column by column. With ``reuse_graph=False`` each call is
    one :meth:`Context.field_jvp` for all runs (a forward pass, a reverse pass with its graph, and a
    reverse pass through that). By default the first two are done once: Hᵀu at a dummy u = 0
    (:meth:`Context.field_vjp`, differentiable), and each call is the one reverse pass
    Hv = ∂⟨Hᵀu, v⟩/∂u, the same double-backward trick as ``field_jvp``'s with its graph kept
    (as :meth:`gamedyn.stability.StepMap.jvp` keeps it), several times cheaper per product."""
    R = tree.n_runs(params)
    ctx = Context(game, {}, regularizer=regularizer)
    _, layout = flatten_state(params, R)
    if not reuse_graph:
        def matvec(V: Tensor) -> Tensor:
            with torch.enable_grad(), game.using(_analysis_rng(game)):
                out = ctx.field_jvp(params, unflatten_state(V, layout))
            return flatten_like(out, layout).detach()

        return matvec, layout.n
    with torch.enable_grad(), game.using(_analysis_rng(game)):
        u = tree.zeros_like(params, requires_grad=True)
        jt_u = ctx.with_graph().field_vjp(params, u)

    def matvec_kept(V: Tensor) -> Tensor:
        with torch.enable_grad(), game.using(_analysis_rng(game)):
            out = tree.grad(tree.vdot(jt_u, unflatten_state(V, layout)).sum(), u,
                            retain_graph=True)
        return flatten_like(out, layout).detach()

    return matvec_kept, layout.n


def top_eigenvalues(game: Game, params: Params, k: int = TOP_K,
                    regularizer: Regularizer | None = None, krylov: int | None = None,
                    tol: float | None = None, max_restarts: int = 300,
                    reuse_graph: bool = True) -> arnoldi.ArnoldiResult:
    """The ``k`` eigenvalues of largest modulus of the game Jacobian H = ∂ξ/∂z at ``params``, per
    run, matrix-free: thick-restarted Arnoldi (:func:`gamedyn.arnoldi.eigs`, whose ``krylov``,
    ``tol`` and ``max_restarts`` these are) on :func:`field_operator` (with its ``reuse_graph``),
    one Jacobian-vector product for all R runs per Krylov step, never the m × m matrix. The
    result's ``values`` ``[R, k]`` are sorted by decreasing modulus; ``residuals`` and
    ``converged`` say how far each run got."""
    matvec, m = field_operator(game, params, regularizer, reuse_graph)
    x = tree.first(params)
    return arnoldi.eigs(matvec, tree.n_runs(params), m, k, krylov=krylov, tol=tol,
                        max_restarts=max_restarts, dtype=x.dtype, device=x.device)


def field_decomposition(game: Game, params: Params, xi: Tensor,
                        regularizer: Regularizer | None = None) -> dict[str, np.ndarray]:
    """:func:`decomposition`'s columns that need H only along the field ξ ``[R, m]``, matrix-free:
    Hξ (one Jacobian-vector product) and Hᵀξ (one vector-Jacobian product, as consensus
    optimisation and SGA compute it) give Sξ = (Hξ + Hᵀξ)/2 and Aξ = (Hξ − Hᵀξ)/2, hence
    ``xi_S_xi``, ``S_xi_norm``, ``A_xi_norm``. The Frobenius norms need all of H: ``S_norm``,
    ``A_norm`` and ``A_share`` are NaN."""
    R = tree.n_runs(params)
    ctx = Context(game, {}, regularizer=regularizer)
    _, layout = flatten_state(params, R)
    v = unflatten_state(xi.to(tree.first(params)), layout)
    with torch.enable_grad(), game.using(_analysis_rng(game)):
        h_xi = flatten_like(ctx.field_jvp(params, v), layout).detach()
    with torch.enable_grad(), game.using(_analysis_rng(game)):
        ht_xi = flatten_like(ctx.field_vjp(params, v), layout).detach()
    xi, Sxi, Axi = xi.cpu(), ((h_xi + ht_xi) / 2).cpu(), ((h_xi - ht_xi) / 2).cpu()
    nan = np.full(R, np.nan)
    return {"S_norm": nan, "A_norm": nan.copy(), "A_share": nan.copy(),
            "xi_S_xi": (xi * Sxi).sum(-1).numpy(), "S_xi_norm": Sxi.norm(dim=-1).numpy(),
            "A_xi_norm": Axi.norm(dim=-1).numpy()}


def at(game: Game, params: Params, *, rule: Rule | None = None,
       optimizers: dict[str, Optimizer] | None = None,
       regularizer: Regularizer | None = None, k: int | None = None,
       dense_max: int = DENSE_MAX, krylov: int | None = None, state: Any = None
       ) -> dict[str, Any]:
    """Everything of the module docstring at ``params`` (R runs): ``eig`` the game Jacobian's
    eigenvalues ``[R, m]``, its :func:`summary` and :func:`decomposition` columns, and with a
    ``rule`` and its ``optimizers`` ``map_eig`` the update map's eigenvalues ``[R, n]`` and
    ``map_radius`` = max |μ| (with the rule ``state`` given, else the one ``rule.init`` gives at
    ``params``).

    **Top k, matrix-free.** With ``k``, or where the runs have more than ``dense_max``
    parameters each (then k = :data:`TOP_K`), no Jacobian is built: ``eig`` holds the k
    eigenvalues of largest modulus ``[R, k]`` (:func:`top_eigenvalues`, Arnoldi with Krylov
    dimension ``krylov``), sorted as :func:`eigenvalues` sorts them, and :func:`summary` is of
    those k (``re_max`` and the rotation index are then over the leading eigenvalues by modulus,
    not over the whole spectrum); ``eig_residual`` [R] is their largest relative Arnoldi residual
    (NaN for a run whose products are not finite). The split is :func:`field_decomposition`'s:
    ``xi_S_xi``, ``S_xi_norm`` and ``A_xi_norm`` from one Jacobian-vector and one
    vector-Jacobian product, ``S_norm``, ``A_norm`` and ``A_share`` NaN; for a stochastic game ξ
    is then evaluated on the analysis stream's samples, those of H (the dense path evaluates ξ on
    the game's current stream). With a ``rule``,
    ``map_eig`` is likewise the update map's top k by modulus (Arnoldi on
    :meth:`gamedyn.stability.StepMap.jvp`) and ``map_radius`` the largest of their moduli. k is
    capped at the dimension. Otherwise everything is computed from the dense Jacobians."""
    m = flatten_state(params, tree.n_runs(params))[1].n
    if m > 0 and (k is not None or m > dense_max):
        return _at_top(game, params, rule, optimizers, regularizer, min(k or TOP_K, m), krylov,
                       state)
    H = field_jacobian(game, regularizer=regularizer, params=params)
    lam = eigenvalues(H)
    out: dict[str, Any] = {"eig": lam, **summary(lam),
                           **decomposition(H, field(game, params, regularizer))}
    if rule is not None:
        step = StepMap(game, rule, optimizers or {}, regularizer=regularizer, params=params,
                       state=state)
        mu = eigenvalues(step.jacobian())
        out["map_eig"] = mu
        out["map_radius"] = mu.abs().numpy().max(-1)
    return out


def _at_top(game: Game, params: Params, rule: Rule | None,
            optimizers: dict[str, Optimizer] | None, regularizer: Regularizer | None, k: int,
            krylov: int | None, state: Any = None) -> dict[str, Any]:
    """:func:`at`'s matrix-free mode (see there)."""
    top = top_eigenvalues(game, params, k, regularizer, krylov=krylov)
    lam = _sorted(top.values)
    with game.using(_analysis_rng(game)):     # ξ of the samples H is of
        xi = field(game, params, regularizer)
    out: dict[str, Any] = {"eig": lam, **summary(lam),
                           **field_decomposition(game, params, xi, regularizer),
                           "eig_residual": top.residuals.max(-1).values.numpy()}
    if rule is not None:
        step = StepMap(game, rule, optimizers or {}, regularizer=regularizer, params=params,
                       state=state)
        if step.n == 0:
            out["map_eig"] = torch.zeros(step.n_runs, 0, dtype=torch.complex128)
            out["map_radius"] = np.zeros(step.n_runs)
        else:
            res = arnoldi.eigs(step.jvp, step.n_runs, step.n, min(k, step.n), krylov=krylov,
                               dtype=step.x0.dtype, device=step.x0.device)
            out["map_eig"] = _sorted(res.values)
            out["map_radius"] = res.values.abs().numpy().max(-1)
    return out


# --- a study's ``spectra:`` key: columns of the runs table ------------------------------------

#: :func:`run_columns`' columns, in order; with ``update_map`` also :data:`MAP_COLUMNS`.
COLUMNS = ("eig_re_max", "eig_im_max", "rotation_index", "S_norm", "A_norm", "A_share", "xi_S_xi",
           "S_xi_norm", "A_xi_norm", "eig_residual", "eig")
MAP_COLUMNS = ("map_radius", "map_eig")
_SPLIT = ("S_norm", "A_norm", "A_share", "xi_S_xi", "S_xi_norm", "A_xi_norm")


def validate(given: Any, key: str = "spectra") -> dict[str, Any] | None:
    """A study's ``spectra:`` value checked: None for ``off`` (nothing computed, and nothing in the
    runs' configs), :data:`DEFAULTS` for ``on``, or the mapping ``{k, update_map}`` with the defaults
    filled in. YAML reads the bare words ``on`` and ``off`` as true and false: both are accepted.
    Anything else is a one-line :class:`StudyError` naming the key, the value and what is
    accepted."""
    if given is False or (isinstance(given, str) and given == "off"):
        return None
    if given is True or (isinstance(given, str) and given == "on"):
        return dict(DEFAULTS)
    if not isinstance(given, dict):
        raise StudyError(key, f"{given!r} is not accepted: expected {ACCEPTED}")
    out = dict(DEFAULTS)
    for name, value in given.items():
        if name == "k":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyError(f"{key}.k", f"{value!r} is not accepted: expected an integer >= 1 "
                                             f"(the top k eigenvalues by Arnoldi)")
        elif name == "update_map":
            if not isinstance(value, bool):
                raise StudyError(f"{key}.update_map",
                                 f"{value!r} is not accepted: expected true or false")
        else:
            raise unknown(f"{key}.{name}", "key", name, DEFAULTS)
        out[name] = value
    return out


def run_columns(game: Game, rule: Rule, optimizers: dict[str, Optimizer], params: Params,
                state: Any, setting: dict[str, Any] | None, n_runs: int, *,
                regularizer: Regularizer | None = None) -> dict[str, Any]:
    """The runs-table columns of a study's ``spectra:`` key (``setting``, :func:`validate`'s; None:
    none) for the first ``n_runs`` runs of a batch, from its runs' final ``params`` and rule
    ``state`` (the whole padded run axis at once: a run's columns do not depend on its batch).

    :func:`at` at z_T, the final parameters, with ``k`` = the setting's (None: dense up to
    :data:`gamedyn.stability.DENSE_MAX` parameters per run, else the top :data:`TOP_K` by Arnoldi).
    Columns [n_runs]:

    - ``eig_re_max`` = max Re λ, ``eig_im_max`` = max |Im λ|, ``rotation_index`` =
      max |Im λ / Re λ| of the game Jacobian H = ∂ξ/∂z (:func:`summary`; over the k leading
      eigenvalues by modulus where Arnoldi is used);
    - ``S_norm`` = ‖S‖_F, ``A_norm`` = ‖A‖_F, ``A_share`` = ‖A‖²/‖H‖² (NaN with Arnoldi, which
      never forms H), ``xi_S_xi`` = ⟨ξ, Sξ⟩, ``S_xi_norm`` = ‖Sξ‖, ``A_xi_norm`` = ‖Aξ‖, with
      S = (H + Hᵀ)/2, A = (H − Hᵀ)/2 (:func:`decomposition`, :func:`field_decomposition`);
    - ``eig_residual``: the largest relative Arnoldi residual of those k values (NaN where dense:
      exact);
    - ``eig``: JSON text ``[[re, im], …]`` of at most k eigenvalues (k = the setting's, else
      :data:`TOP_K`: those of largest modulus where more were computed), sorted as
      :func:`eigenvalues` sorts them;
    - with ``update_map: true``, ``map_radius`` = max |μ| and ``map_eig`` (JSON, likewise) of the
      update map F′ at the run's own final state (parameters, rule and optimizer state: the map
      the run was iterating); NaN/None where an optimizer is not ``linearisable`` (Adam, RMSProp;
      as :func:`gamedyn.lyapunov.run_exponents`).

    A stochastic game draws every sample of this analysis from the analysis stream
    :data:`gamedyn.stability.RNG_STREAM`, never the training stream (nor the recorder's): training
    is the same bit for bit with and without the key. A run whose final state is not finite gets
    NaN (None for JSON), computed at a finite batch-mate's state in its place so that nothing
    non-finite enters the batched products; a failure of the analysis warns and gives NaN for all:
    it never takes the batch down."""
    if setting is None:
        return {}
    R = tree.n_runs(params)
    keep = setting["k"] or TOP_K
    with_map = bool(setting["update_map"])
    out = _nan_columns(R, with_map)
    try:
        full, ok = _finite({"params": params, "state": state}, R)
        if ok.any():
            use_map = with_map and all(linearisable(o) for o in optimizers.values())
            with game.using(_analysis_rng(game)):   # ξ's samples too (the dense path's)
                res = at(game, full["params"], rule=rule if use_map else None,
                         optimizers=optimizers, regularizer=regularizer, k=setting["k"],
                         state=full["state"])
            out.update(eig_re_max=res["re_max"], eig_im_max=res["im_max"],
                       rotation_index=res["rotation_index"], **{c: res[c] for c in _SPLIT},
                       eig=_json(res["eig"], keep))
            if "eig_residual" in res:
                out["eig_residual"] = res["eig_residual"]
            if use_map:
                out.update(map_radius=res["map_radius"], map_eig=_json(res["map_eig"], keep))
            for c, v in out.items():   # the non-finite runs' stand-in values dropped
                v = np.array(v, dtype=object if c.endswith("eig") else float)
                v[~ok] = None if c.endswith("eig") else np.nan
                out[c] = v
    except Exception as e:  # analysis must not take a study down
        warnings.warn(f"spectra failed: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
        out = _nan_columns(R, with_map)
    return {c: v[:n_runs] for c, v in out.items()}


def _nan_columns(R: int, with_map: bool) -> dict[str, np.ndarray]:
    """:func:`run_columns`' columns, all NaN (None for the JSON ones)."""
    return {c: np.full(R, None, dtype=object) if c.endswith("eig") else np.full(R, np.nan)
            for c in COLUMNS + (MAP_COLUMNS if with_map else ())}


def _finite(full: Any, R: int) -> tuple[Any, np.ndarray]:
    """A copy of the state ``full`` (``{"params", "state"}``) whose runs with a non-finite state
    coordinate hold the state of the first finite run instead, and which runs were finite [R]."""
    x, layout = flatten_state(full, R)
    ok = torch.isfinite(x).all(1) if layout.n else torch.ones(R, dtype=torch.bool)
    if ok.any() and not ok.all():
        x = torch.where(ok[:, None], x, x[int(ok.nonzero()[0, 0])])
        full = unflatten_state(x, layout)
    return (tree.map(lambda t: t.detach().clone() if isinstance(t, Tensor) else t, full),
            ok.cpu().numpy())


def _json(lam: Tensor, keep: int) -> np.ndarray:
    """Each run's eigenvalues ``lam`` ``[R, n]`` as JSON text ``[[re, im], …]``: the ``keep`` of
    largest modulus (all where n ≤ ``keep``) in their given order; None where one is not finite."""
    a = lam.cpu().numpy()
    if a.shape[1] > keep:
        sel = np.sort(np.argsort(-np.abs(a), axis=1, kind="stable")[:, :keep], axis=1)
        a = np.take_along_axis(a, sel, 1)
    return np.array([json.dumps([[float(v.real), float(v.imag)] for v in row])
                     if np.isfinite(row).all() else None for row in a], dtype=object)


def path_angle(game: Game, start: Params, end: Params, alphas: np.ndarray = ALPHAS,
               regularizer: Regularizer | None = None) -> dict[str, np.ndarray]:
    """The path-angle of Berard et al. 2020 on the line θ_α = (1 − α)·``start`` + α·``end`` (both
    players, every run at once): for each α of ``alphas`` [K], ``cosine`` [R, K] =
    ⟨v, θ₁ − θ₂⟩/(‖v‖ ‖θ₁ − θ₂‖) with v = ξ(θ_α) the joint field, and ``norm2`` [R, K] = ‖v‖²
    (NaN cosine where v = 0 or the checkpoints coincide). One field evaluation per α."""
    d = tree.map(lambda a, b: a - b, start, end)
    cos, norm2 = [], []
    for a in np.asarray(alphas, dtype=float):
        theta = tree.map(lambda s, e, a=a: (1 - a) * s + a * e, start, end)
        v = field(game, theta, regularizer)
        dd = tree.ravel(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos.append(((v * dd).sum(1) / (v.norm(dim=1) * dd.norm(dim=1))).numpy())
        norm2.append((v ** 2).sum(1).numpy())
    return {"alpha": np.asarray(alphas, dtype=float), "cosine": np.stack(cos, 1),
            "norm2": np.stack(norm2, 1)}


def _components(configs: list[dict[str, Any]], plugins: tuple[str, ...] = ()) -> tuple:
    """The game, rule, optimizers and regularizer of runs that share structure, built for
    ``configs`` (one per run), as a batch builds them."""
    from . import plugins as plugin_mod
    from .games import GAMES
    from .optim import OPTIMIZERS
    from .random import Streams
    from .regularizers import REGULARIZERS
    from .rules import RULES

    for spec in plugins:
        plugin_mod.load(spec)
    cfg = configs[0]
    dtype = getattr(torch, cfg["dtype"])
    game = GAMES.get(cfg["game"]["name"]).build([c["game"] for c in configs], dtype)
    rule = RULES.get(cfg["rule"]["name"]).build([c["rule"] for c in configs], dtype)
    opts = {p: OPTIMIZERS.get(cfg["optimizer"][p]["name"]).build(
        [c["optimizer"][p] for c in configs], dtype) for p in game.players}
    reg = REGULARIZERS.get(cfg["regularizer"]["name"]).build([c["regularizer"] for c in configs],
                                                            dtype)
    game.rng = Streams(torch.tensor([c["seed"] for c in configs], dtype=torch.int64))
    return game, rule, opts, reg


def along(results: Any, steps: list[int] | None = None, update_map: bool = True
          ) -> pd.DataFrame:
    """A side table of spectra along training: for every run of ``results`` (a
    :class:`gamedyn.results.Results`) and each of ``steps`` (default: every recorded step) where
    the run has a record, one row with ``run_id``, ``step``, the :func:`summary` and
    :func:`decomposition` columns, ``map_radius``, and the eigenvalues as ``eig.re.i``,
    ``eig.im.i`` (game Jacobian) and ``map.re.i``, ``map.im.i`` (update map), sorted as
    :func:`eigenvalues` sorts them. The parameters are read from the recorded coordinates, so
    every player must record each of its parameters (at most
    :data:`gamedyn.record.MAX_COORDS`); ValueError otherwise. Runs that share structure (a batch's)
    are evaluated together, all their records stacked on the run axis."""
    from .study import make_study

    study = make_study(results.study)
    by_id = {r.run_id: r for r in study.runs}
    done = set(results.runs["run_id"])
    frames = []
    for batch in study.batches():
        batch = [r for r in batch if r.run_id in done]
        if not batch:
            continue
        shapes = _components([batch[0].config], batch[0].plugins)[0].shapes()
        names = [(p, n, s) for p, named in shapes.items() for n, s in named.items()]
        coords = [c for p, n, s in names for c in _coord_names(p, n, s)]
        t = results.trajectories_for([r.run_id for r in batch], variables=coords, steps=steps)
        if t.empty:
            continue
        if set(t["variable"].astype(str)) != set(coords):
            raise ValueError("spectra need every parameter recorded: players of at most "
                             "gamedyn.record.MAX_COORDS coordinates")
        wide = t.pivot_table(index=["run_id", "step"], columns="variable", values="value",
                             observed=True).reset_index().dropna()
        wide["run_id"] = wide["run_id"].astype(str)
        configs = [by_id[r].config for r in wide["run_id"]]
        game, rule, opts, reg = _components(configs, batch[0].plugins)
        flat = torch.tensor(wide[coords].to_numpy(float), dtype=game.dtype)
        blocks = tree.split(flat, [s for _, _, s in names])
        params: Params = {p: {} for p in shapes}
        for (p, n, _), b in zip(names, blocks):
            params[p][n] = b.contiguous()
        res = at(game, params, rule=rule if update_map else None, optimizers=opts,
                 regularizer=reg)
        out = {"run_id": wide["run_id"].to_numpy(), "step": wide["step"].to_numpy(int)}
        out.update({k: v for k, v in res.items() if k not in ("eig", "map_eig")})
        for key, prefix in (("eig", "eig"), ("map_eig", "map")):
            if key in res:
                lam = res[key].numpy()
                for i in range(lam.shape[1]):
                    out[f"{prefix}.re.{i}"] = lam[:, i].real
                    out[f"{prefix}.im.{i}"] = lam[:, i].imag
        frames.append(pd.DataFrame(out))
    if not frames:
        return pd.DataFrame(columns=["run_id", "step"])
    table = pd.concat(frames, ignore_index=True)
    rank = {rid: i for i, rid in enumerate(results.runs["run_id"])}
    order = np.lexsort((table["step"].to_numpy(), table["run_id"].map(rank).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def _coord_names(player: str, name: str, shape: tuple[int, ...]) -> list[str]:
    from .record import _coord_names as names

    return names(player, name, shape)
