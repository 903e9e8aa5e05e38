"""Shared helpers: build and step small studies without touching the filesystem."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from gamedyn.batch import run_batch
from gamedyn.study import make_study

ROOT = Path(__file__).resolve().parents[1]


def simulate(game, rule, lr=0.1, init=None, steps=100, record_every=1, seeds=1, **extra):
    """Run a one-rule study in memory; returns (runs DataFrame, trajectories DataFrame)."""
    import pandas as pd

    spec = {"name": "t", "game": game, "rules": [rule], "optimizer": {"name": "sgd", "lr": lr},
            "init": init or {"dist": "constant", "scale": 1.0}, "steps": steps,
            "record_every": record_every, "seeds": seeds, **extra}
    study = make_study(spec)
    results = [run_batch(b, study.thresholds) for b in study.batches()]
    return (pd.concat([r.runs for r in results], ignore_index=True),
            pd.concat([r.trajectories for r in results], ignore_index=True))


def series(traj, variable, run_id=None):
    """One variable's values over steps (of one run, or the only run)."""
    t = traj[traj["variable"].astype(str) == variable]
    if run_id is not None:
        t = t[t["run_id"].astype(str) == run_id]
    return np.asarray(t.sort_values("step")["value"], dtype=float)


@pytest.fixture
def cli():
    """Run ``python -m gamedyn.cli`` in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args, cwd=None):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "gamedyn.cli", *map(str, args)],
                              capture_output=True, text=True, cwd=cwd, env=env, timeout=300)

    return run
