"""Seed aggregates: per configuration, how often each outcome happens, with its uncertainty.

A *configuration* is a run's configuration columns (:func:`gamedyn.study.config_columns`) but the
seed and the initial point (``init.*``), or the columns a caller names in ``by``: the runs that differ
only by their random stream are its repetitions. Per configuration, :func:`aggregate` gives

- ``runs``: the runs that finished; ``failed`` and ``failed_seeds``: those whose batch raised
  (``failures.parquet``), which have no outcome and count in no frequency;
- for each dynamics label L (:data:`gamedyn.diagnose.LABELS`), the fraction ``L`` of the finished
  runs labelled L and its Wilson score interval ``L_lo``, ``L_hi`` (95 %); likewise ``fit:L`` for
  the fit labels of games that judge fit;
- for ``growth_rate``, ``final_distance`` and each fit metric present (:data:`FIT_METRICS`), the
  median ``<m>_median`` and interquartile range ``<m>_iqr`` = q₇₅ − q₂₅ over the finished runs where
  it is finite (NaN where none is).

The Wilson score interval (Wilson 1927, J. Am. Stat. Assoc. 22, 209–212; recommended over the Wald
interval p̂ ± z√(p̂(1 − p̂)/n) by Brown, Cai & DasGupta 2001, Statist. Sci. 16, 101–133) for k
successes in n trials, p̂ = k/n and z the standard normal's 1 − α/2 quantile, is the set of p with
|p̂ − p| ≤ z √(p(1 − p)/n):

    (p̂ + z²/2n ± z √(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n).

It stays inside [0, 1], and for k = 0 or k = n it is not empty (k = 0: [0, z²/(n + z²)]) — the
case of "0 of 5 seeds converged" that a sweep reports most often.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import NormalDist

import numpy as np
import pandas as pd

from .diagnose import LABELS
from .errors import StudyError
from .study import config_columns

#: Columns never part of a configuration by default: the random stream's seed and the initial point.
EXCLUDED = ("seed",)
EXCLUDED_PREFIXES = ("init.",)
#: Evidence columns summarised by median and IQR, when present.
METRICS = ("growth_rate", "final_distance")
#: Fit metrics of the games that judge fit (:mod:`gamedyn.densities`, :mod:`gamedyn.fit`).
FIT_METRICS = ("fit_kl", "fit_kl_excess", "fit_w1", "fit_modes", "modes", "high_quality", "kl",
               "energy", "w1")
#: The interval's confidence level.
LEVEL = 0.95


def wilson(k: np.ndarray, n: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval (lo, hi) of a proportion, k successes of n trials, elementwise
    (see the module docstring); NaN where n = 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = p + z * z / (2 * n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        scale = 1 + z * z / n
        lo, hi = (centre - half) / scale, (centre + half) / scale
    lo, hi = np.where(k == 0, 0.0, np.clip(lo, 0, 1)), np.where(k == n, 1.0, np.clip(hi, 0, 1))
    bad = ~(n > 0)   # k = 0 and k = n give these bounds exactly (rounding would not)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def default_by(runs: pd.DataFrame) -> list[str]:
    """The configuration columns of ``runs`` but the seed and the initial point."""
    return [c for c in config_columns(list(runs.columns))
            if c not in EXCLUDED and not c.startswith(EXCLUDED_PREFIXES)]


def aggregate(runs: pd.DataFrame, by: str | Iterable[str] | None = None,
              failed: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration of ``runs`` (a runs table), in the order of first appearance,
    with the columns of the module docstring.

    ``by``: the columns that make a configuration (default :func:`default_by`). ``failed``: the
    configuration columns and ``seed`` of runs that failed (one row each), counted per configuration
    in ``failed``/``failed_seeds``; a configuration whose every run failed has ``runs`` 0 and NaN
    frequencies. A column of ``by`` that ``runs`` lacks is refused, naming the ones it has.
    """
    by = default_by(runs) if by is None else [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in runs.columns]
    if missing:
        raise StudyError("by", f"{missing[0]!r} is not a column of the runs table; accepted: "
                               f"{', '.join(map(str, runs.columns))}")
    if not by:
        raise StudyError("by", "expected at least one column")
    done = runs.assign(_failed=False)
    if failed is not None and len(failed):
        lost = failed.reindex(columns=[*by, "seed"]).assign(_failed=True)
        done = pd.concat([done, lost], ignore_index=True)
    group = done.groupby(by, sort=False, dropna=False).ngroup().to_numpy()
    n_groups = group.max() + 1 if len(group) else 0
    first = pd.Series(np.arange(len(done))).groupby(group).first().to_numpy()
    out = done.iloc[first][by].reset_index(drop=True)

    is_failed = done["_failed"].to_numpy(dtype=bool)
    ok = ~is_failed
    n = np.bincount(group[ok], minlength=n_groups)
    out["runs"] = n
    out["failed"] = np.bincount(group[is_failed], minlength=n_groups)
    seeds = done.loc[is_failed, "seed"] if "seed" in done else pd.Series([], dtype=object)
    listed = seeds.groupby(group[is_failed]).agg(lambda s: ",".join(map(str, s)))
    out["failed_seeds"] = [listed.get(g, "") for g in range(n_groups)]

    outcomes = [("", "dynamics", LABELS)]
    if "fit" in runs and (runs["fit"] != "n/a").any():
        outcomes.append(("fit:", "fit", tuple(sorted(set(runs["fit"]) - {"n/a"}))))
    for prefix, column, labels in outcomes:
        values = done[column].to_numpy() if column in done else np.full(len(done), None)
        for label in labels:
            k = np.bincount(group[ok & (values == label)], minlength=n_groups)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"{prefix}{label}"] = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            out[f"{prefix}{label}_lo"], out[f"{prefix}{label}_hi"] = wilson(k, n)

    for metric in [m for m in (*METRICS, *FIT_METRICS) if m in runs]:
        x = pd.to_numeric(done[metric], errors="coerce").to_numpy(dtype=float)
        x = np.where(ok & np.isfinite(x), x, np.nan)
        q = pd.DataFrame({"g": group, "x": x}).groupby("g")["x"].quantile([0.25, 0.5, 0.75])
        q = q.unstack().reindex(range(n_groups))
        out[f"{metric}_median"] = q[0.5].to_numpy()
        out[f"{metric}_iqr"] = (q[0.75] - q[0.25]).to_numpy()
    return out


def failed_configs(study: dict, failures: pd.DataFrame) -> pd.DataFrame | None:
    """The configuration columns (and ``seed``) of the failed runs listed in ``failures``, from the
    study's expansion (:func:`gamedyn.study.make_study` of the resolved spec ``study``); None when
    none failed, or when the study cannot be expanded here (a plugin file that is not found: a
    warning says so, and the failures are then counted in no configuration)."""
    import warnings

    from .study import make_study

    if not len(failures):
        return None
    try:
        runs = make_study(study).runs
    except StudyError as e:
        warnings.warn(f"the failed runs are left out of the aggregates: the study could not be "
                      f"expanded to find their configurations ({e})", RuntimeWarning, stacklevel=3)
        return None
    by_id = {r.run_id: r.columns for r in runs}
    return pd.DataFrame([by_id[i] for i in failures["run_id"] if i in by_id])


def varying(table: pd.DataFrame, by: list[str]) -> list[str]:
    """Of the configuration columns ``by`` of ``table``, the ones that vary (``rule_label`` and
    ``game_label`` stand for their components' parameters); the first of ``by`` when none does."""
    labelled = {c.removesuffix("_label") for c in ("game_label", "rule_label", "regularizer_label")
                if c in by and table[c].nunique(dropna=False) > 1}
    keep = [c for c in by if table[c].nunique(dropna=False) > 1
            and not (c in ("game", "rule", "regularizer") and f"{c}_label" in by)
            and not c.startswith(tuple(f"{p}." for p in labelled))]
    return keep or by[:1]


def compact(table: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """An :func:`aggregate` table for printing: of the configuration columns ``by`` (default: those
    before ``runs``) only the ones that vary (``rule_label`` and ``game_label`` stand for their
    components' parameters), ``runs`` (and ``failed seeds`` when any failed), each outcome that
    occurs as ``p [lo, hi]``, and each metric as ``median (IQR)`` (3 and 2 significant digits)."""
    by = list(table.columns[:list(table.columns).index("runs")]) if by is None else by
    out = table[varying(table, by)].copy()
    out["runs"] = table["runs"]
    if table["failed"].any():
        out["failed seeds"] = table["failed_seeds"]
    names = [c[:-3] for c in table.columns if c.endswith("_lo")]
    for name in names:
        if (table[name] > 0).any():
            out[name] = [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" if n else "-" for p, lo, hi, n in
                         zip(table[name], table[f"{name}_lo"], table[f"{name}_hi"], table["runs"])]
    for metric in [c[:-7] for c in table.columns if c.endswith("_median")]:
        out[f"{metric} median (IQR)"] = [f"{m:.3g} ({q:.2g})" if np.isfinite(m) else "-"
                       for m, q in zip(table[f"{metric}_median"], table[f"{metric}_iqr"])]
    return out
