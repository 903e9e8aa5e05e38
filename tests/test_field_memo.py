"""A record's field is reused by the next eager step (gamedyn.rules.context.FieldMemo): the numbers
are those computed afresh, bit for bit, and it is never used where the evaluations differ."""

from __future__ import annotations

import pandas as pd
import pytest

from gamedyn.batch import run_batch
from gamedyn.record import Recorder
from gamedyn.rules.context import FieldMemo
from gamedyn.study import make_study


def _batch(**extra):
    study = make_study({"name": "m", "game": {"name": "dirac", "loss": "gan"},
                        "optimizer": {"name": "sgd", "lr": 0.1}, "seeds": 3, "steps": 30,
                        "record_every": 1, "init": {"dist": "normal", "scale": 1.0},
                        "rules": ["simultaneous"], **extra})
    (batch,) = study.batches()
    return study, batch


REAL_GET = FieldMemo.get


def _run(study, batch, monkeypatch, memo: bool):
    hits = []
    real = REAL_GET

    def get(self, params, players):
        out = real(self, params, players) if memo else None
        hits.append(out is not None)
        return out

    monkeypatch.setattr(FieldMemo, "get", get)
    monkeypatch.setattr(Recorder, "defer", lambda self: False)  # records evaluated one by one
    res = run_batch(batch, study.thresholds, compile="off")
    return res, sum(hits)


@pytest.mark.parametrize("extra", [{}, {"rules": ["extragradient"]},
                                   {"rules": [{"name": "alternating", "disc_steps": 2}]},
                                   {"regularizer": {"name": "clip", "c": 0.5}}])
def test_the_reused_field_is_the_fresh_one(extra, monkeypatch):
    study, batch = _batch(**extra)
    fresh, _ = _run(study, batch, monkeypatch, memo=False)
    reused, hits = _run(study, batch, monkeypatch, memo=True)
    assert hits == 30  # every step but the first starts at the point just recorded
    drop = ["wall_time", "compile_time"]
    pd.testing.assert_frame_equal(fresh.runs.drop(columns=drop), reused.runs.drop(columns=drop))
    pd.testing.assert_frame_equal(fresh.trajectories, reused.trajectories)


@pytest.mark.parametrize("study_extra", [
    {"regularizer": {"name": "r1", "gamma": 1.0}},                       # changes the losses
    {"game": {"name": "gan1d", "discriminator": "learned", "gradient": "minibatch"}},  # draws
])
def test_no_reuse_where_the_record_evaluates_something_else(study_extra, monkeypatch):
    study, batch = _batch(**study_extra)
    _, hits = _run(study, batch, monkeypatch, memo=True)
    assert hits == 0
