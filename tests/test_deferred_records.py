"""Eager records of a small deterministic game are evaluated 32 at a time on a tiled run axis
(gamedyn.record.Recorder.defer): the tables are those of records evaluated one by one, bit for bit."""

from __future__ import annotations

import pandas as pd
import pytest

from gamedyn.batch import run_batch
from gamedyn.record import Recorder
from gamedyn.study import make_study

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [
    # a diverging run (WGAN, simultaneous) stops mid-flush; 77 steps leave a partial last flush
    {"game": {"name": "dirac", "loss": ["gan", "wgan"]}, "rules": ["simultaneous"], "steps": 77},
    {"game": "bilinear", "rules": [{"name": "alternating", "disc_steps": 3}], "record_every": 3},
    {"game": "tandem", "rules": ["lola"], "optimizer": {"name": "adam", "lr": 0.05}},
    {"game": "ipd", "rules": ["extragradient"], "steps": 40, "record_every": 2},
]


def _study(case):
    return make_study({"name": "d", "optimizer": {"name": "sgd", "lr": [0.1, 1.5]}, "seeds": 2,
                       "steps": 70, "record_every": 1, "init": {"dist": "normal", "scale": 1.0},
                       **case})


@pytest.mark.parametrize("case", CASES)
def test_deferred_records_equal_records_one_by_one(case, monkeypatch):
    study = _study(case)
    calls = []
    real = Recorder.defer

    def spy(self):
        calls.append(real(self))
        return calls[-1]

    monkeypatch.setattr(Recorder, "defer", spy)
    deferred = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    assert calls and all(calls)
    monkeypatch.setattr(Recorder, "defer", lambda self: False)
    one_by_one = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    drop = ["wall_time", "compile_time"]
    for a, b in zip(deferred, one_by_one):
        pd.testing.assert_frame_equal(a.runs.drop(columns=drop), b.runs.drop(columns=drop))
        pd.testing.assert_frame_equal(a.trajectories, b.trajectories)
    stopped = pd.concat([r.runs for r in deferred])["stop_reason"].notna()
    if case["rules"] == ["simultaneous"]:
        assert stopped.any() and not stopped.all()  # the case does test a stop


def test_games_that_draw_or_have_large_players_record_one_by_one(monkeypatch):
    study = make_study({"name": "d", "game": {"name": "gan1d", "discriminator": "learned",
                                              "gradient": "minibatch"},
                        "rules": ["simultaneous"], "steps": 20, "record_every": 1,
                        "optimizer": {"name": "sgd", "lr": 0.1}})
    calls = []
    real = Recorder.defer
    monkeypatch.setattr(Recorder, "defer", lambda self: calls.append(real(self)) or calls[-1])
    run_batch(study.batches()[0], study.thresholds, compile="off")
    assert calls == [] or calls == [False]
