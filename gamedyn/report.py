"""``gamedyn report``: a text summary of a study's outcomes and its figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .figures import FIGURES
from .results import Results


def summary(results: Results) -> pd.DataFrame:
    """Runs per (game, rule) and outcome."""
    return (results.runs.groupby(["game_label", "rule_label"], sort=False)["dynamics"]
            .value_counts().unstack(fill_value=0))


def write_report(results: Results) -> list[Path]:
    """Draw the figures the study names (``figures:``, default phase_plane) under
    ``<results>/figures/<name>.png`` and return their paths."""
    names = results.study.get("figures", ["phase_plane"])
    return [FIGURES.get(n)(results, results.path / "figures" / f"{n}.png") for n in names]
