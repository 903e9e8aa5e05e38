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


def seed_aggregates(results: Results) -> str:
    """The seed aggregates (:meth:`Results.aggregate`) as a printable table: the configurations
    that vary, runs, each outcome's frequency with its Wilson 95 % interval, medians and IQRs."""
    from .aggregate import compact

    return compact(results.aggregate()).to_string(index=False)


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
