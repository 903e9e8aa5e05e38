"""Expectations a study states about its own outcomes (``expect:``), checked after it runs.

Each entry selects runs by column values and names the labels they should get::

    expect:
      - {where: {rule: extragradient}, dynamics: converged}
      - {where: {rule: simultaneous, optimizer.lr: 0.1}, dynamics: [diverged, drifting]}

``where`` keys are columns of the runs table (``rule``, ``rule_label``, ``game.loss``,
``optimizer.lr``, …); the other keys are label columns (``dynamics``, ``fit``,
``predicted_dynamics``) with one accepted value or a list. ``gamedyn run`` reports expectations
not met; the test suite runs the parity studies and asserts that all are met.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .errors import StudyError

LABELS = ("dynamics", "fit", "predicted_dynamics")


def validate(spec: Any) -> list[dict[str, Any]]:
    """The ``expect:`` list, checked for shape (columns are checked against the runs later)."""
    if not isinstance(spec, list):
        raise StudyError("expect", f"{spec!r} is not accepted: expected a list of mappings with "
                                   f"`where` and a label ({', '.join(LABELS)})")
    for i, item in enumerate(spec):
        key = f"expect[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("where", {}), dict):
            raise StudyError(key, f"{item!r} is not accepted: expected {{where: {{column: value}}, "
                                  f"dynamics: label}}")
        labels = [k for k in item if k != "where"]
        if not labels or any(k not in LABELS for k in labels):
            raise StudyError(key, f"{item!r} is not accepted: besides `where`, name one of "
                                  f"{', '.join(LABELS)}")
    return spec


def check(runs: pd.DataFrame, spec: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs that contradict an expectation: one row each (run_id, expectation, column,
    expected, got); an expectation that selects no run is a row too (run_id None)."""
    rows = []
    for i, item in enumerate(spec):
        mask = pd.Series(True, index=runs.index)
        for col, value in item.get("where", {}).items():
            mask &= runs[col] == value if col in runs else False
        for col, expected in item.items():
            if col == "where":
                continue
            allowed = expected if isinstance(expected, list) else [expected]
            if not mask.any():
                rows.append({"run_id": None, "expectation": i, "column": col,
                             "expected": allowed, "got": "no run matches `where`"})
                continue
            for _, r in runs[mask & ~runs[col].isin(allowed)].iterrows():
                rows.append({"run_id": r["run_id"], "expectation": i, "column": col,
                             "expected": allowed, "got": r[col]})
    return pd.DataFrame(rows, columns=["run_id", "expectation", "column", "expected", "got"])
