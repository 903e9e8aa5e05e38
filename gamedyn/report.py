"""``gamedyn report``: a text summary of a study's outcomes and its figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .plot import phase_plane
from .results import Results


def summary(results: Results) -> pd.DataFrame:
    """Runs per (game, rule) and outcome."""
    return (results.runs.groupby(["game_label", "rule_label"], sort=False)["dynamics"]
            .value_counts().unstack(fill_value=0))


def write_report(results: Results) -> list[Path]:
    """Write the study's figures under ``<results>/figures/`` and return their paths."""
    return [phase_plane(results, results.path / "figures" / "phase_plane.png")]
