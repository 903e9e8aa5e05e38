"""Basins of attraction: which attractor each run ends on, when it settled there, and what share of
the starts of each configuration each attractor draws.

The basin of an attractor is the set of initial points whose runs end on it — an equilibrium, a
cycle, or divergence (to infinity). A study estimates basins on a grid or a quasi-random sample of
starts (``init: {grid: ...}`` / ``init: {sobol: ...}``, :func:`gamedyn.init.start_points`), and the
attractor of each run is identified from its end, as Datseris & Wagemakers (2022, "Effortless
estimation of basins of attraction", Chaos 32, 023104) describe for Attractors.jl: end points of
runs that converged are clustered (several runs ending on the same equilibrium are one attractor;
so are those of runs that came to rest elsewhere, ``spurious``: fixed points of the rule only),
and cycles are told apart by invariants of their late window — the centre, the range of the radius
about it, and the period (:func:`gamedyn.diagnose.oscillation`). Everything is done on the recorded
coordinates (:class:`gamedyn.record.Recorder`: every parameter of a small player, the norms of a
large one's tensors), over all runs at once.

Two stages:

1. per batch, :func:`end_columns` (numpy over ``[R, T, C]``): the signature of each run's end
   (``attractor_point``, ``attractor_radius_lo``/``_hi``) and ``settle_step``;
2. over the whole study (:func:`identify`, when the tables are assembled, so ids are stable across
   the study's batches and configurations): ``attractor`` = ``eq:i`` for the i-th equilibrium
   cluster (numbered in lexicographic order of their centres), ``fixed:i`` likewise for the rest
   points of spurious runs, ``cycle:j`` for the j-th cycle cluster (in order of radius, then
   centre), ``diverged``, or ``drifting`` (no attractor reached).

``settle_step`` is the first recorded step from which the run stays in its attractor's
neighbourhood to its end: within :data:`SETTLE_TOL` × its initial distance of its end point
(an equilibrium or a spurious rest point), with its radius about the cycle's centre within the
cycle's radius range widened by :data:`CYCLE_BAND` × its largest radius (a cycle), or further from
the end point than it started and for good (divergence: the signal, distance or field norm, above
its initial value from then on). NaN for drifting runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: Equilibria: end points within EQ_TOL × max(1, the largest |coordinate| of the converged ends) of
#: each other (Chebyshev distance, chained) are one equilibrium.
EQ_TOL = 1e-2
#: Cycles: centres and radius ranges within CYCLE_TOL × the median largest radius, and periods within
#: a factor 1 + CYCLE_TOL, of each other (chained) are one cycle.
CYCLE_TOL = 0.1
#: Settling on an equilibrium: within SETTLE_TOL × the initial distance of the end point.
SETTLE_TOL = 1e-2
#: Settling on a cycle: the radius within the cycle's range widened by CYCLE_BAND × its largest radius.
CYCLE_BAND = 0.05
#: The columns :func:`end_columns` adds to a batch's runs (``attractor`` comes from :func:`identify`).
END_COLUMNS = ("attractor_point", "attractor_radius_lo", "attractor_radius_hi", "settle_step")


def end_columns(steps: np.ndarray, signal: np.ndarray, coords: np.ndarray, n_valid: np.ndarray,
                labels: dict[str, np.ndarray], late_fraction: float) -> dict[str, np.ndarray]:
    """Each run's end signature and settling step (columns [R] of :data:`END_COLUMNS`).

    ``steps`` [T], ``signal`` [R, T] (the diagnosed distance or field norm), ``coords`` [R, T, C]
    (the recorded coordinates; NaN past each run's ``n_valid`` records), ``labels`` the diagnosis
    (``dynamics``, ``period``), ``late_fraction`` its late window. ``attractor_point`` is JSON text
    of the end point (converged or spurious: the last record) or the cycle's centre (cycling: the
    late window's mean), None otherwise; the radius range is the late window's min and max of ‖c_t − centre‖
    (cycling; NaN otherwise)."""
    from .diagnose import late_window

    R, T, C = coords.shape
    dyn = np.asarray(labels["dynamics"], dtype=object)
    rows, t_idx = np.arange(R), np.arange(T)
    start, last = late_window(n_valid, late_fraction)
    valid = t_idx[None, :] < n_valid[:, None]
    window = (t_idx[None, :] >= start[:, None]) & (t_idx[None, :] <= last[:, None]) & valid
    conv, cyc, div = np.isin(dyn, ["converged", "spurious"]), dyn == "cycling", dyn == "diverged"
    with np.errstate(invalid="ignore", divide="ignore"):
        end = coords[rows, last]                                               # [R, C]
        centre = (np.where(window[:, :, None], coords, 0.0).sum(1)
                  / np.maximum(window.sum(1), 1)[:, None])
        point = np.where(cyc[:, None], centre, end)
        gap = np.sqrt(((coords - point[:, None, :]) ** 2).sum(-1))             # [R, T]
        r_lo = np.where(window, gap, np.inf).min(1)
        r_hi = np.where(window, gap, -np.inf).max(1)
        near_eq = gap <= SETTLE_TOL * np.maximum(gap[:, :1], 1e-300)
        band = CYCLE_BAND * r_hi[:, None]
        on_cycle = (gap >= r_lo[:, None] - band) & (gap <= r_hi[:, None] + band)
        away = signal > signal[:, :1]
    ok = np.select([conv[:, None], cyc[:, None], div[:, None]], [near_eq, on_cycle, away], False)
    ok = ok | ~valid                                    # past the end nothing is asked
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 1), 1), 1) & valid
    first = stays.argmax(1)
    settle = np.where(stays.any(1) & (conv | cyc | div), np.asarray(steps, float)[first], np.nan)
    has_point = (conv | cyc) & np.isfinite(point).all(1)
    text = np.full(R, None, dtype=object)
    text[has_point] = [json.dumps([float(f"{v:.12g}") for v in p]) for p in point[has_point]]
    return {"attractor_point": pd.array(text, dtype="str"),  # text, whether or not any run has one
            "attractor_radius_lo": np.where(cyc, r_lo, np.nan),
            "attractor_radius_hi": np.where(cyc, r_hi, np.nan),
            "settle_step": settle}


#: Most distinct end cells clustered with a dense distance matrix (above: scipy's k-d tree).
DENSE_CELLS = 512


def _clusters(features: np.ndarray, radius: float) -> np.ndarray:
    """Single-linkage clusters [N] (labels 0…K−1, unordered) of ``features`` [N, d] at Chebyshev
    distance ``radius``: points are first merged on a lattice of spacing radius/4 (runs that end on
    one equilibrium are many copies of one point), then the lattice cells' representatives within
    ``radius`` of each other are joined (connected components: of their dense distance matrix for
    at most :data:`DENSE_CELLS` cells, without importing scipy, 0.4 s; else of a k-d tree's pairs)."""
    if len(features) == 0:
        return np.zeros(0, dtype=int)
    cells, inverse = np.unique(np.round(features / (radius / 4)), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    reps = np.zeros((len(cells), features.shape[1]))
    np.add.at(reps, inverse, features)
    reps /= np.bincount(inverse, minlength=len(cells))[:, None]
    if len(cells) <= DENSE_CELLS:
        near = np.abs(reps[:, None, :] - reps[None, :, :]).max(-1) <= radius      # [K, K]
        label = np.arange(len(cells))
        while True:  # each cell takes the smallest label within reach, until none changes
            new = np.where(near, label[None, :], len(cells)).min(1)
            if np.array_equal(new, label):
                return np.unique(label, return_inverse=True)[1].reshape(-1)[inverse]  # 0…K−1
            label = new
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(reps).query_pairs(radius, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(cells), len(cells)))
    _, label = connected_components(graph, directed=False)
    return label[inverse]


def _ordered(label: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Cluster labels renumbered in lexicographic order of ``keys`` [K, k] (one row per label)."""
    order = np.lexsort(keys.T[::-1])
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    return rank[label]


def identify(runs: pd.DataFrame, eq_tol: float = EQ_TOL, cycle_tol: float = CYCLE_TOL
             ) -> np.ndarray:
    """The ``attractor`` of each run of a runs table (see the module docstring): ids stable across
    the table, from its ``dynamics``, ``attractor_point``, ``attractor_radius_lo``/``_hi`` and
    ``period`` columns. Runs of tables written before these columns existed get None."""
    n = len(runs)
    if "attractor_point" not in runs or "dynamics" not in runs:
        return np.full(n, None, dtype=object)
    dyn = runs["dynamics"].to_numpy(dtype=object)
    text = runs["attractor_point"].to_numpy(dtype=object)
    out = np.where(dyn == "diverged", "diverged", "drifting").astype(object)
    has = np.array([isinstance(t, str) for t in text], dtype=bool)
    dims = np.array([t.count(",") + 1 if h else -1 for t, h in zip(text, has)])
    for kind, prefix in (("converged", "eq"), ("spurious", "fixed"), ("cycling", "cycle")):
        sel = np.flatnonzero(has & (dyn == kind))
        for dim in np.unique(dims[sel]):    # ends of one dimension (one game's coordinates)
            idx = sel[dims[sel] == dim]
            pts = np.array([json.loads(text[i]) for i in idx], dtype=float)
            if kind != "cycling":
                radius = eq_tol * max(1.0, float(np.abs(pts).max()))
                label = _clusters(pts, radius)
                centres = np.array([pts[label == k].mean(0) for k in range(label.max() + 1)])
                keys = np.round(centres / radius)
            else:
                lo = runs["attractor_radius_lo"].to_numpy(float)[idx]
                hi = runs["attractor_radius_hi"].to_numpy(float)[idx]
                period = runs["period"].to_numpy(float)[idx] if "period" in runs else np.ones(len(idx))
                scale = cycle_tol * max(float(np.median(hi)), 1e-12)
                logp = np.log(np.where(np.isfinite(period) & (period > 0), period, 1.0))
                feats = np.column_stack([pts / scale, lo / scale, hi / scale,
                                         logp / np.log1p(cycle_tol)])
                label = _clusters(feats, 1.0)
                keys = np.array([np.r_[np.round(hi[label == k].mean() / scale),
                                       np.round(pts[label == k].mean(0) / scale)]
                                 for k in range(label.max() + 1)])
            rank = _ordered(label, keys)
            offset = sum(1 for v in set(out[has & (dyn == kind)]) if str(v).startswith(prefix))
            out[idx] = [f"{prefix}:{offset + k}" for k in rank]
    return out


def with_attractors(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table with its ``attractor`` column (:func:`identify`) set over all its runs, placed
    before ``settle_step`` (unchanged when the table has no end signatures)."""
    if "attractor_point" not in runs:
        return runs
    ids = identify(runs)
    runs = runs.drop(columns=["attractor"], errors="ignore")
    at = list(runs.columns).index("settle_step") if "settle_step" in runs else len(runs.columns)
    runs.insert(at, "attractor", pd.Series(ids, index=runs.index, dtype=object))
    return runs


def fractions(runs: pd.DataFrame, by: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Basin fractions: one row per configuration (the configuration columns but the seed and the
    initial point, :func:`gamedyn.aggregate.default_by`, or ``by``), with ``runs`` and, for each
    attractor id of the table, the fraction of the configuration's starts that end on it — on a
    grid or a Sobol sample of starts, the basin's share of the sampled box (its area fraction,
    estimated with a standard error ≤ 0.5/√runs for random starts). Attractor columns in order:
    the equilibria, the cycles, then diverged and drifting."""
    from .aggregate import default_by

    by = default_by(runs) if by is None else [by] if isinstance(by, str) else list(by)
    ids = runs["attractor"].astype(object).where(runs["attractor"].notna(), "none")
    group = runs.groupby(by, sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(runs))).groupby(group).first().to_numpy()
    out = runs.iloc[first][by].reset_index(drop=True)
    n = np.bincount(group, minlength=len(out))
    out["runs"] = n

    def order(a: str) -> tuple[int, int, str]:
        kind, _, k = a.partition(":")
        rank = {"eq": 0, "cycle": 1, "diverged": 2, "drifting": 3}.get(kind, 4)
        return rank, int(k) if k.isdigit() else 0, a

    values = ids.to_numpy(dtype=object)
    for a in sorted(set(values), key=order):
        out[a] = np.bincount(group[values == a], minlength=len(out)) / np.maximum(n, 1)
    return out
