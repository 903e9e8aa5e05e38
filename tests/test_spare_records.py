"""A finished batch leaves its record array to the process's next batch (``record.values_array``):
that batch's results are those it gives in fresh memory, and only a batch of a similar size takes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gamedyn import make_study, record, run_study
from gamedyn.batch import run_batch

# runs at lr 3 blow up within a few records: their later records are never written
SPEC = {"name": "spare", "game": "bilinear", "rules": ["simultaneous"],
        "optimizer": {"name": "sgd", "lr": [0.1, 3.0]}, "init": {"dist": "normal", "scale": 1.0},
        "seeds": 8, "steps": 400, "record_every": 10, "lyapunov": "off"}
TIMING = ["wall_time", "compile_time"]
SENTINEL = 12345.0


def _run(spec: dict, compile: str):
    study = make_study(spec)
    (batch,) = study.batches()
    return run_batch(batch, study.thresholds, compile=compile)


@pytest.fixture
def no_spare():
    record.drop_spare()
    yield
    record.drop_spare()


@pytest.mark.parametrize("compile", ["off", "on"])
def test_a_batch_in_memory_an_earlier_batch_left_gives_its_results_in_fresh_memory(
        compile, no_spare, monkeypatch):
    fresh = _run(SPEC, compile)
    assert fresh.runs["stop_reason"].notna().any() and fresh.runs["stop_reason"].isna().any()
    record.drop_spare()
    _run({**SPEC, "optimizer": {"name": "sgd", "lr": 0.2}}, compile)   # another batch, same shape
    (left,) = record._spare
    left[:] = SENTINEL  # whatever the next batch does not write would show
    taken = []
    values_array = record.values_array

    def spy(shape, dtype):
        out = values_array(shape, dtype)
        taken.append(np.shares_memory(out, left))
        return out

    monkeypatch.setattr(record, "values_array", spy)
    again = _run(SPEC, compile)
    assert taken == [True]
    assert not (again.trajectories["value"] == SENTINEL).any()
    pd.testing.assert_frame_equal(again.trajectories, fresh.trajectories)
    cols = [c for c in fresh.runs.columns if c not in TIMING]
    pd.testing.assert_frame_equal(again.runs[cols], fresh.runs[cols])
    assert (again.runs["stepping"] == ("eager" if compile == "off" else "compiled")).all()


def test_only_an_array_of_a_similar_size_and_the_same_dtype_takes_what_was_left(no_spare,
                                                                                 monkeypatch):
    record._leave(np.empty((10, 10)))
    (left,) = record._spare
    small = record.values_array((2, 3, 4), np.dtype(np.float64))        # 24 of 100: a probe's
    assert not np.shares_memory(small, left) and record._spare == [left]
    other = record.values_array((6, 10), np.dtype(np.float32))          # another dtype
    assert not np.shares_memory(other, left) and record._spare == [left]
    record._leave(small)                                                  # smaller: not kept
    assert record._spare == [left]
    taken = record.values_array((3, 4, 5), np.dtype(np.float64))         # 60 of 100
    assert np.shares_memory(taken, left) and taken.shape == (3, 4, 5) and record._spare == []
    record._leave(taken)                                                  # the whole array again
    (again,) = record._spare
    assert again.size == 100 and np.shares_memory(again, left)
    big = record.values_array((11, 10), np.dtype(np.float64))            # too small: dropped
    assert not np.shares_memory(big, left) and record._spare == []
    monkeypatch.setattr(record, "SPARE_BYTES", 800)
    record._leave(np.empty(101))                                          # too large to keep
    assert record._spare == []
    record._leave(np.empty(100))
    assert len(record._spare) == 1


def test_a_study_leaves_no_record_array_behind(tmp_path, no_spare, monkeypatch):
    """Its batches stepped in this process pass their arrays on, and the last is freed at the end
    (a notebook's process goes on)."""
    left = []
    leave = record._leave
    monkeypatch.setattr(record, "_leave", lambda values: (left.append(values.size), leave(values)))
    run_study(make_study({**SPEC, "max_batch": 4}), out=tmp_path, progress=False)
    assert len(left) == 4 and record._spare == []
