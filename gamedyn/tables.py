"""Per-rule tables of a study's runs (pandas): the fit of mixture-of-Gaussians games, for reports
and figures.

From the runs table's final-record columns (:mod:`gamedyn.fit`'s metrics and labels, one row per
run), :func:`rule_table` aggregates per rule (and game): runs, mean ± standard error over runs
(s.e. = s / √n, s the sample standard deviation, ddof = 1) of modes captured, high-quality % and the
KL of the mode histogram to uniform, and the fractions of runs labelled ``mode_collapse``, ``fit``
(and, where present, ``converged``, ``cycling``, ``mode_hopping``). :func:`markdown_table` writes it
out; :func:`display_labels` names the rules.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _plain(value: object) -> object:
    """5.0 → 5 (integer parameters come back as floats from columns holding NaN)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def display_labels(runs: pd.DataFrame) -> pd.Series:
    """``rule_label`` with the parameters that vary between alternatives of the same rule spelled
    out even where they take their default (``unrolled`` beside ``unrolled(k=10)`` becomes
    ``unrolled(k=5)``), for tables and figures."""
    out = runs["rule_label"].astype(str).copy()
    for rule, group in runs.groupby("rule", sort=False):
        cols = [c for c in runs.columns if c.startswith("rule.") and group[c].nunique(dropna=True) > 1]
        if not cols:
            continue
        bare = group.index[group["rule_label"] == rule]
        for i in bare:
            params = ", ".join(f"{c[5:]}={_plain(group.at[i, c])}" for c in cols)
            out.at[i] = f"{rule}({params})"
    return out


def standard_error(s: pd.Series) -> float:
    """The standard error of the mean of ``s``'s values (NaN skipped): s / √n, s the sample standard
    deviation (ddof = 1); NaN for fewer than two values."""
    return float(s.std(ddof=1) / math.sqrt(s.count())) if s.count() > 1 else float("nan")


def rule_table(runs: pd.DataFrame, by: tuple[str, ...] = ("game_label", "rule_label")) -> pd.DataFrame:
    """Per rule (and game): runs, modes captured (mean ± s.e.), high-quality % (mean ± s.e.), KL
    (mean ± s.e.), and the fractions of runs labelled mode_collapse and fit, from the runs table's
    final-record columns ``modes``, ``high_quality``, ``kl`` and ``fit``. Rules are named by
    :func:`display_labels`."""
    runs = runs.assign(rule_label=display_labels(runs))
    g = runs.groupby(list(by), sort=False)
    se = standard_error
    out = pd.DataFrame({
        "runs": g.size(),
        "modes": g["modes"].mean(), "modes_se": g["modes"].agg(se),
        "high_quality_pct": 100 * g["high_quality"].mean(),
        "high_quality_pct_se": 100 * g["high_quality"].agg(se),
        "kl": g["kl"].mean(), "kl_se": g["kl"].agg(se),
        "mode_collapse": g["fit"].apply(lambda s: float((s == "mode_collapse").mean())),
        "fit": g["fit"].apply(lambda s: float((s == "fit").mean())),
    })
    if "dynamics" in runs:
        out["converged"] = g["dynamics"].apply(lambda s: float((s == "converged").mean()))
        out["cycling"] = g["dynamics"].apply(lambda s: float((s == "cycling").mean()))
    if "mode_hopping" in runs:
        out["mode_hopping"] = g["mode_hopping"].apply(lambda s: float(s.astype(bool).mean()))
    return out.reset_index()


def markdown_table(table: pd.DataFrame) -> str:
    """The :func:`rule_table` as a Markdown table (mean ± s.e.); the game column only when the
    table has several games."""
    games = table["game_label"].nunique() > 1
    head = "| game | rule |" if games else "| rule |"
    head += " runs | modes | high quality % | KL | mode collapse | fit |"
    lines = [head, ("|---" if games else "") + "|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(
            (f"| {r['game_label']} " if games else "") + f"| {r['rule_label']} | {int(r['runs'])} | "
            f"{r['modes']:.2f} ± {np.nan_to_num(r['modes_se']):.2f} | "
            f"{r['high_quality_pct']:.1f} ± {np.nan_to_num(r['high_quality_pct_se']):.1f} | "
            f"{r['kl']:.3f} ± {np.nan_to_num(r['kl_se']):.3f} | {r['mode_collapse']:.0%} | {r['fit']:.0%} |")
    return "\n".join(lines) + "\n"
