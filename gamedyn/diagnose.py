"""Label each run's dynamics — converged, cycling, diverged, spurious or drifting — with evidence
columns.

Everything here is vectorised over the run axis (numpy arrays ``[R, T]``), never a Python loop over
runs: diagnosing a batch of 100,000 runs costs a few array passes.

The decision rule
-----------------
The signal is each run's distance d_t to the game's equilibrium at the recorded steps (for a game
without a known equilibrium, the norm of the gradient field: the distance to stationarity). The
*late window* is the last ``late_fraction`` of a run's valid records. In order, the first that holds:

1. **diverged** — the run was stopped: a recorded value was non-finite, or d_t exceeded
   ``blowup`` × max(1, d_0).
2. **converged** — d_final ≤ ``converge_tol`` × d_0 (the distance fell to that fraction of the
   initial one; with d_0 = 0, d_final must be 0).
3. **diverged** — over the late window the distance grew steadily and it ends above where it
   started: with g the least-squares slope of log d_t against the step (``growth_rate``, per step)
   and W the window's length in steps, exp(g·W) ≥ ``growth_factor`` and d_final > d_0. (A signal
   that grows again from far below its start, such as the field norm of a policy that is still
   saturating, is not divergence.)
4. **converged** — it shrank steadily: exp(g·W) ≤ 1 / ``growth_factor``.
5. **spurious** — the run came to rest away from the equilibrium: its parameters stopped moving
   (the last move between records, ``final_move``, is at most ``converge_tol`` × the largest
   move of the run) although the distance did not fall (rules 2 and 4 did not hold). It sits at
   a fixed point of the *rule* that is not one of the *game*: LOLA's points off tandem's line of
   equilibria, the spurious fixed points of LSS or consensus (Mazumdar et al. 2019, arXiv
   1901.00838, §3). Judged only where the recorded coordinates are every parameter
   (``complete``); a large player's recorded tensor norms may rest while its weights turn.
6. **cycling** — the parameter coordinate that varies most in the late window crosses its window
   mean often enough to span at least ``min_cycles`` full periods. ``period`` = 2 × the mean time
   between consecutive crossings (interpolated linearly between records), ``amplitude`` = half the
   coordinate's range in the window.
7. **drifting** — none of the above: the run keeps moving, neither settling, exploding nor
   repeating (a slow spiral, a walk along a valley of equilibria).

``period`` and ``amplitude`` are reported whenever at least two crossings exist, whatever the label.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

#: The thresholds of the decision rule; a study sets any of them under ``diagnose:``.
DEFAULTS: dict[str, float] = {
    "late_fraction": 0.5,
    "converge_tol": 1e-3,
    "growth_factor": 1.25,
    "min_cycles": 1.5,
    "blowup": 1e6,
}
#: What each threshold accepts: (lower bound, strict?, upper bound).
BOUNDS: dict[str, tuple[float, bool, float | None]] = {
    "late_fraction": (0.0, True, 1.0),
    "converge_tol": (0.0, False, None),
    "growth_factor": (1.0, True, None),
    "min_cycles": (0.0, True, None),
    "blowup": (1.0, True, None),
}
LABELS = ("converged", "cycling", "diverged", "spurious", "drifting")
_TINY = 1e-300


def diagnose(
    steps: np.ndarray,
    distance: np.ndarray,
    coords: np.ndarray,
    n_valid: np.ndarray,
    stopped: np.ndarray,
    thresholds: dict[str, float] | None = None,
    complete: bool = True,
) -> dict[str, np.ndarray]:
    """Labels and evidence for R runs.

    ``steps`` [T]: the recorded steps (equally spaced); ``distance`` [R, T]; ``coords`` [R, T, C]:
    the recorded parameter coordinates (``complete``: every parameter of every player);
    ``n_valid`` [R]: records before the run stopped (T if it did not); ``stopped`` [R] bool:
    stopped for a non-finite value or a blow-up. Returns arrays [R]: ``dynamics``,
    ``initial_distance``, ``final_distance``, ``growth_rate``, ``growth_window`` (exp(g·W)),
    ``final_move`` (‖c_last − c_last−1‖ / the largest such move, NaN where not judged),
    ``period``, ``amplitude``, ``cycles``.
    """
    th = {**DEFAULTS, **(thresholds or {})}
    R, T = distance.shape
    steps = np.asarray(steps, dtype=float)
    t_idx = np.arange(T)
    start, last = late_window(n_valid, th["late_fraction"])
    window = (t_idx[None, :] >= start[:, None]) & (t_idx[None, :] <= last[:, None])

    rows = np.arange(R)
    d0 = distance[:, 0]
    d_final = distance[rows, last]
    W = steps[last] - steps[start]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logd = np.log(np.maximum(np.where(window, distance, 1.0), _TINY))
        slope = masked_slope(steps, logd, window)
        growth_window = np.exp(slope * W)
        period, amplitude, cycles = oscillation(steps, coords, window)

        final_move = _final_move(coords, n_valid) if complete and coords.shape[2] else np.full(R, np.nan)
        converged_tol = d_final <= th["converge_tol"] * d0
        label = np.full(R, "drifting", dtype=object)
        label[cycles >= th["min_cycles"]] = "cycling"
        label[final_move <= th["converge_tol"]] = "spurious"
        label[growth_window <= 1.0 / th["growth_factor"]] = "converged"
        label[(growth_window >= th["growth_factor"]) & (d_final > d0)] = "diverged"
        label[converged_tol] = "converged"
        label[stopped] = "diverged"

    return {
        "dynamics": label,
        "initial_distance": d0,
        "final_distance": d_final,
        "growth_rate": slope,
        "growth_window": growth_window,
        "final_move": final_move,
        "period": period,
        "amplitude": amplitude,
        "cycles": cycles,
    }


def _final_move(coords: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """[R]: the last move between records, ‖c_last − c_last−1‖, over the largest move of the run
    (NaN for a run of fewer than two records or one that never moved)."""
    R, T = coords.shape[:2]
    moves = np.sqrt((np.diff(coords, axis=1) ** 2).sum(-1))                   # [R, T − 1]
    valid = np.arange(T - 1)[None, :] < (n_valid - 1)[:, None]
    largest = np.where(valid, moves, -np.inf).max(1, initial=-np.inf)
    last = moves[np.arange(R), np.clip(n_valid - 2, 0, max(T - 2, 0))] if T > 1 else np.full(R, np.nan)
    return np.where((n_valid >= 2) & (largest > 0), last / largest, np.nan)


def late_window(n_valid: np.ndarray, late_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The late window of each run [R] as record indices (first, last): the last ``late_fraction``
    of its ``n_valid`` records."""
    last = np.maximum(n_valid - 1, 0)
    return np.minimum(np.floor(last * (1.0 - late_fraction)).astype(int), last), last


def lyapunov_columns(lyap: tuple[np.ndarray, np.ndarray] | None, dynamics: np.ndarray,
                     window: np.ndarray, growth_factor: float, horizon: int | None = None,
                     period: np.ndarray | None = None) -> dict[str, Any]:
    """The finite-time Lyapunov exponents of each run's end as evidence beside its label:
    ``lyap`` = (λ ``[R, p]``, decreasing, and their standard errors ``[R, p]``;
    :func:`gamedyn.lyapunov.exponents`, over ``horizon`` steps H), or None where not computed.
    They are judged on the label's own scale: over the late window of ``window`` [R] steps W a small
    perturbation changes by the factor exp(λ₁·W), as the distance does in rules 3–4 of the decision
    rule. With τ = log(``growth_factor``)/W, λ₁ ≤ −τ says converged (perturbations die out: a
    stable fixed point), λ₁ ≥ τ diverged (they grow: an unstable orbit, λ₁ = log ρ on a linear
    map), and |λ₁| < τ neutral (a stable limit cycle, whose other exponents are negative, or a
    neutral orbit). A label is *consistent* with the exponent when λ₁ ± 2 standard errors meets its
    region, the neutral band (cycling, drifting) widened to |λ₁| < max(τ, log(``growth_factor``)/H):
    on a nonlinear neutral orbit neighbouring orbits of different periods shear apart linearly in
    time, so the finite-time λ₁ is positive, of order log(H)/H, and tends to 0 only slowly; growth
    by less than the growth factor over the horizon is not told apart from that. Over less than a
    period, λ₁ measures the local stretching of a piece of the orbit rather than its average: a
    cycling run whose ``period`` [R] is not covered twice by the horizon gets no verdict (NA; a
    study asks for a longer one with ``lyapunov: {steps: H}``).
    Columns [R]:

    - ``lyapunov_1`` and ``lyapunov_1_se``: λ₁ per step and its standard error (NaN where not
      computed, or where the state was not finite);
    - ``lyapunov``: the spectrum λ₁ ≥ … ≥ λ_p as JSON text where p > 1 (small games), else None;
    - ``lyapunov_dynamics``: what λ₁ says (converged, diverged or neutral; None where NaN);
    - ``lyapunov_agrees``: the label is consistent with the exponent: its region (neutral for
      cycling and drifting; converged or neutral for spurious, whose rest point may lie on a set of
      them, as LOLA's line on tandem) meets λ₁ ± 2 standard errors. NA where there is no exponent. Like
      ``stability_agrees``, a disagreement is a run to look at (a transient not yet over, a label
      near its threshold), not necessarily an error.
    """
    R = len(dynamics)
    if lyap is None or lyap[0].shape[1] == 0:
        return {"lyapunov_1": np.full(R, np.nan), "lyapunov_1_se": np.full(R, np.nan),
                "lyapunov": np.full(R, None, dtype=object),
                "lyapunov_dynamics": np.full(R, None, dtype=object),
                "lyapunov_agrees": pd.array([None] * R, dtype="boolean")}
    lam, se = lyap
    lam1, se1 = lam[:, 0], np.nan_to_num(se[:, 0], nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.log(growth_factor) / window
        band = np.maximum(tau, np.log(growth_factor) / (horizon or np.inf))
        said = np.where(lam1 <= -tau, "converged",
                        np.where(lam1 >= tau, "diverged", "neutral")).astype(object)
        lo, hi = lam1 - 2 * se1, lam1 + 2 * se1
        agrees = np.select([dynamics == "converged", dynamics == "diverged",
                            dynamics == "spurious"],
                           [lo <= -tau, hi >= tau, lo < band], (hi > -band) & (lo < band))
    known = ~np.isnan(lam1)
    said[~known] = None
    if period is not None:   # a cycle's exponent is evidence over two periods at least
        short = (dynamics == "cycling") & ~(2 * period <= (horizon or np.inf))
        known_verdict = known & ~short
    else:
        known_verdict = known
    spectrum = np.full(R, None, dtype=object)
    if lam.shape[1] > 1:
        spectrum[:] = [json.dumps([float(v) for v in row]) if k else None
                       for row, k in zip(lam, known)]
    return {"lyapunov_1": lam1, "lyapunov_1_se": se[:, 0], "lyapunov": spectrum,
            "lyapunov_dynamics": said,
            "lyapunov_agrees": pd.array(np.where(known_verdict, agrees, None), dtype="boolean")}


def masked_slope(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least-squares slope of y[r, :] against x [T] over the records where mask[r, :] holds, per row
    [R]: g = Σ (x − x̄)(y − ȳ) / Σ (x − x̄)² over the masked records (0 where undefined: fewer than
    two distinct x)."""
    w = mask.astype(float)
    n = w.sum(1)
    xm = (w * x).sum(1) / np.maximum(n, 1)
    ym = (w * y).sum(1) / np.maximum(n, 1)
    dx = (x[None, :] - xm[:, None]) * w
    sxx = (dx * dx).sum(1)
    sxy = (dx * (y - ym[:, None])).sum(1)
    return np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)


def oscillation(steps: np.ndarray, coords: np.ndarray, window: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Period, amplitude and number of full cycles [R] of each run's most varying coordinate of
    ``coords`` [R, T, C] over the records in ``window`` [R, T], at ``steps`` [T]: with k crossings
    of the coordinate's window mean (interpolated linearly between records), cycles = (k − 1)/2,
    period = 2 × (last − first crossing)/(k − 1) (NaN below two crossings), amplitude = half the
    coordinate's range in the window (see the module docstring)."""
    R = coords.shape[0]
    ct = np.ascontiguousarray(coords.transpose(0, 2, 1))  # [R, C, T]: sums along contiguous T
    w = window[:, None, :]                                 # (along the middle axis: twice as long)
    n = np.maximum(window.sum(1), 1)[:, None]
    mean = np.where(w, ct, 0.0).sum(2) / n
    var = (np.where(w, ct - mean[:, :, None], 0.0) ** 2).sum(2)
    var = np.where(np.isfinite(var), var, -1.0)
    j = var.argmax(1)
    c = ct[np.arange(R), j] - mean[np.arange(R), j][:, None]  # [R, T]
    both = window[:, :-1] & window[:, 1:]
    pos = c > 0
    cross = both & (pos[:, :-1] != pos[:, 1:])
    frac = c[:, :-1] / np.where(cross, c[:, :-1] - c[:, 1:], 1.0)
    tau = np.where(cross, steps[:-1] + np.diff(steps) * frac, np.nan)
    k = cross.sum(1)
    span = np.nanmax(np.where(cross, tau, -np.inf), 1) - np.nanmin(np.where(cross, tau, np.inf), 1)
    period = np.where(k >= 2, 2.0 * span / np.maximum(k - 1, 1), np.nan)
    cycles = np.maximum(k - 1, 0) / 2.0
    cmax = np.where(window, c, -np.inf).max(1)
    cmin = np.where(window, c, np.inf).min(1)
    amplitude = np.where(window.any(1), (cmax - cmin) / 2.0, np.nan)
    return period, amplitude, cycles


def validate_thresholds(given: Any, key: str = "diagnose") -> dict[str, float]:
    """A ``diagnose:`` mapping checked against :data:`BOUNDS`, defaults filled in."""
    from .errors import StudyError, unknown

    if not isinstance(given, dict):
        raise StudyError(key, f"{given!r} is not accepted: expected a mapping of thresholds "
                              f"({', '.join(DEFAULTS)})")
    out = dict(DEFAULTS)
    for name, value in given.items():
        if name not in DEFAULTS:
            raise unknown(f"{key}.{name}", "threshold", name, DEFAULTS)
        low, strict, high = BOUNDS[name]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and (value > low if strict else value >= low) and (high is None or value <= high)
        if not ok:
            bound = f"{'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high else "")
            raise StudyError(f"{key}.{name}", f"{value!r} is not accepted: expected a number {bound}")
        out[name] = float(value)
    return out
