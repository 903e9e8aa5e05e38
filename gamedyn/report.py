"""``gamedyn report``: a text summary of a study's outcomes and its figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import expect
from .figures import FIGURES
from .results import Results


def summary(results: Results) -> pd.DataFrame:
    """Runs per (game, rule) and outcome."""
    return (results.runs.groupby(["game_label", "rule_label"], sort=False)["dynamics"]
            .value_counts().unstack(fill_value=0))


def seed_aggregates(results: Results, table: pd.DataFrame | None = None) -> str:
    """The seed aggregates (:meth:`Results.aggregate`, or ``table`` when given) as a printable
    table: the configurations that vary, runs, each outcome's frequency with its Wilson 95 %
    interval, medians and IQRs."""
    from .aggregate import compact

    return compact(results.aggregate() if table is None else table).to_string(index=False)


def basin_fractions(results: Results) -> pd.DataFrame | None:
    """Each attractor's share of each configuration's starts (:func:`gamedyn.basins.fractions`),
    with only the configuration columns that vary and the shares to 2 decimals; None when the runs
    have fewer than two attractor ids (one says nothing the outcome counts do not)."""
    from .aggregate import default_by, varying
    from .basins import fractions

    runs = results.runs
    if "attractor" not in runs or runs["attractor"].nunique() < 2:
        return None
    by = default_by(runs)
    table = fractions(runs, by)
    shares = list(table.columns[list(table.columns).index("runs") + 1:])
    out = table[[*varying(table, by), "runs"]].copy()
    for a in shares:
        out[a] = [f"{x:.2f}" for x in table[a]]
    return out


def write_report(results: Results) -> list[Path]:
    """Draw the figures the study names (``figures:``, default phase_plane) under
    ``<results>/figures/<name>.png`` and return their paths."""
    names = results.study.get("figures", ["phase_plane"])
    return [FIGURES.get(n)(results, results.path / "figures" / f"{n}.png") for n in names]


def unmet(results: Results) -> pd.DataFrame:
    """The study's ``expect:`` entries that its runs do not meet (empty when all are met)."""
    return expect.check(results.runs, results.study.get("expect", []))


def expectation_note(results: Results) -> str | None:
    """One line on the study's ``expect:`` entries, or None when it states none."""
    spec = results.study.get("expect", [])
    if not spec:
        return None
    bad = unmet(results)
    if bad.empty:
        return f"expectations: all {len(spec)} met"
    first = bad.iloc[0]
    return (f"expectations: {bad['expectation'].nunique()} of {len(spec)} not met "
            f"({len(bad)} runs; first: expect[{first['expectation']}] wants {first['column']} in "
            f"{first['expected']}, run {first['run_id']} got {first['got']!r})")
