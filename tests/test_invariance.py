"""The run-axis invariant: a run's trajectory does not depend on its batch-mates or on the workers, bit
for bit (see also tests/test_contract.py over every rule, optimizer and a few games)."""

import numpy as np
import pandas as pd
import pytest

from gamedyn import make_study, run_study
from gamedyn.batch import run_batch

pytestmark = pytest.mark.invariance

SPEC = {
    "name": "inv",
    "game": [{"name": "bilinear", "dim": 3, "A": "random", "A_seed": 5}, {"name": "dirac", "loss": "gan"}],
    "rules": ["simultaneous", {"name": "alternating", "disc_steps": 3}],
    "optimizer": {"name": "sgd", "lr": [0.05, 0.2], "momentum": [0.0, -0.3], "disc": {"lr": [0.1]}},
    "init": {"dist": "normal", "scale": 1.0},
    "seeds": 3,
    "steps": 150,
    "record_every": 5,
}


def by_run(traj):
    t = traj.assign(run_id=traj["run_id"].astype(str), variable=traj["variable"].astype(str))
    return t.sort_values(["run_id", "step", "variable"]).reset_index(drop=True)


def test_a_run_alone_equals_the_same_run_in_a_batch():
    study = make_study(SPEC)
    batch = max(study.batches(), key=len)
    assert len(batch) == 12
    together = by_run(run_batch(batch, compile="off").trajectories)
    for run in (batch[0], batch[5], batch[-1]):
        alone = by_run(run_batch([run], compile="off").trajectories)
        mine = together[together["run_id"] == run.run_id].reset_index(drop=True)
        assert len(alone) == len(mine) > 0
        np.testing.assert_array_equal(mine["variable"], alone["variable"])
        np.testing.assert_array_equal(mine["value"], alone["value"])   # bit for bit


def test_one_worker_equals_two_workers(tmp_path, pool):
    study = make_study(SPEC)
    one = run_study(study, out=tmp_path / "j1", jobs=1, progress=False, compile="off")
    two = run_study(study, out=tmp_path / "j2", jobs=2, progress=False, compile="off")
    np.testing.assert_array_equal(by_run(one.trajectories)["value"], by_run(two.trajectories)["value"])
    cols = ["run_id", "dynamics", "final_distance", "growth_rate"]
    pd.testing.assert_frame_equal(one.runs[cols], two.runs[cols])


def test_initial_point_depends_on_seed_only():
    study = make_study({**SPEC, "game": "dirac", "rules": ["simultaneous"]})
    traj = by_run(pd.concat([run_batch(b, compile="off").trajectories for b in study.batches()]))
    start = traj[(traj["step"] == 0) & (traj["variable"] == "gen.theta")]
    runs = pd.DataFrame([{"run_id": r.run_id, "seed": r.config["seed"]} for r in study.runs])
    start = start.merge(runs, on="run_id")
    per_seed = start.groupby("seed")["value"].nunique()
    assert (per_seed == 1).all() and start.groupby("seed")["value"].first().nunique() == 3
