"""Deterministic tables: two runs of a study — resumed or not, one worker or two, loky or Dask — give
equal ``runs.parquet`` except for the documented timing columns (README, Results:
``gamedyn.results.TIMING_COLUMNS``), and equal ``trajectories.parquet``, under ``--compile auto``
too: auto decides from the batch's structure, never from timings or the compile cache."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
import torch

from gamedyn import fuse, make_study, orchestrate, run_study
from gamedyn.batch import run_batch
from gamedyn.results import TIMING_COLUMNS

from .conftest import ROOT

# 2 games x 2 rules x 2 lrs x 2 scales x 2 seeds = 32 runs in 12 batches of at most 3 (the games
# that draw minibatches take seconds a batch; their streams are per run: tests/test_invariance.py)
SPEC = {"name": "det",
        "game": [{"name": "bilinear", "dim": 2}, {"name": "dirac", "loss": "wgan"}],
        "rules": ["simultaneous", {"name": "alternating", "disc_steps": 2}],
        "optimizer": {"name": "sgd", "lr": [0.05, 0.1]},
        "init": {"dist": "normal", "scale": [0.5, 1.0]},
        "seeds": 2, "steps": 30, "record_every": 3, "max_batch": 3}


def _same(a, b, dropped: tuple[str, ...]) -> None:
    pd.testing.assert_frame_equal(a.runs.drop(columns=list(dropped)),
                                  b.runs.drop(columns=list(dropped)))
    pd.testing.assert_frame_equal(a.trajectories, b.trajectories)


def _resumed(study, out, compile: str):
    """The study run with the alternating batches failing, then again: a resumed run."""
    real = orchestrate.run_batch

    def flaky(runs, *args, **kwargs):
        if runs[0].config["rule"]["name"] == "alternating":
            raise RuntimeError("interrupted")
        return real(runs, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orchestrate, "run_batch", flaky)
        first = run_study(study, out=out, progress=False, compile=compile)
    assert len(first.failures) == len(study.runs) // 2
    again = run_study(study, out=out, progress=False, compile=compile)
    assert again.info["on_disk"] == again.info["computed"] == len(study.runs) // 2
    return again


def test_the_timing_columns_are_those_the_readme_documents():
    text = (ROOT / "README.md").read_text()
    assert TIMING_COLUMNS == ("wall_time", "compile_time")
    para = re.search(r"\*\*Deterministic tables\.\*\*(.*?)\n\n", text, re.S).group(1)
    assert "*timing columns* `wall_time` and `compile_time`." in para


def test_tables_equal_across_workers_resume_and_dask(tmp_path, pool):
    """With ``--compile off``, every column but wall_time and compile_time is equal."""
    distributed = pytest.importorskip("distributed")
    study = make_study(SPEC)
    assert len(study.batches()) == 12
    ref = run_study(study, out=tmp_path / "j1", progress=False, compile="off")
    assert ref.failures.empty and len(ref.runs) == 32
    assert set(ref.runs["stepping_note"]) == {""}
    again = run_study(study, out=tmp_path / "again", progress=False, compile="off")
    _same(ref, again, TIMING_COLUMNS)
    _same(ref, _resumed(study, tmp_path / "resumed", "off"), TIMING_COLUMNS)
    _same(ref, run_study(study, out=tmp_path / "j2", jobs=2, progress=False, compile="off"),
          TIMING_COLUMNS)
    threads = torch.get_num_threads()  # the worker threads live in this process and set it to 1
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      protocol="tcp", host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            dask = run_study(study, out=tmp_path / "dask", progress=False, compile="off",
                             backend="dask", scheduler=cluster.scheduler_address)
    finally:
        torch.set_num_threads(threads)
    _same(ref, dask, TIMING_COLUMNS)
    # the timing columns are there, and they are what differs
    assert set(TIMING_COLUMNS) <= set(ref.runs.columns)


def test_tables_equal_under_compile_auto(tmp_path):
    """The default mode: equal but for the timing columns."""
    study = make_study(SPEC)
    ref = run_study(study, out=tmp_path / "a", progress=False)
    _same(ref, run_study(study, out=tmp_path / "b", progress=False), TIMING_COLUMNS)
    _same(ref, _resumed(study, tmp_path / "resumed", "auto"), TIMING_COLUMNS)


def test_auto_decides_from_the_structure_not_from_timings(monkeypatch):
    """Eager steps made slow (0.2 s each while auto probes) do not change its choice: 90 steps of
    x·y over one run are priced by their operations (well under a second), not by the clock
    (which would say 18 s and go on to trace and compile)."""
    from gamedyn.rules import RULES

    study = make_study({**SPEC, "game": {"name": "bilinear", "dim": 2}, "rules": ["simultaneous"],
                        "steps": 100, "seeds": 1, "record_every": 10,
                        "optimizer": {"name": "sgd", "lr": 0.1},
                        "init": {"dist": "constant", "scale": 1.0}})
    (batch,) = study.batches()
    fast = run_batch(batch, study.thresholds, compile="auto").runs
    rule, calls = RULES.get("simultaneous"), []
    real = rule.step

    def slow(self, *args):
        calls.append(1)
        if len(calls) <= fuse.PROBE_STEPS:
            time.sleep(0.2)
        return real(self, *args)

    monkeypatch.setattr(rule, "step", slow)
    slowed = run_batch(batch, study.thresholds, compile="auto").runs
    assert len(calls) >= 100  # (and the stability analysis's step)
    assert fast["stepping_note"].iloc[0] == "auto: too short for a compilation to pay"
    pd.testing.assert_frame_equal(slowed.drop(columns=list(TIMING_COLUMNS)),
                                  fast.drop(columns=list(TIMING_COLUMNS)))



def test_the_stepping_note_carries_no_timing(monkeypatch):
    """Auto declines to compile (its cost estimate above the eager time left): the note says so
    the same way whatever the estimates were (it used to carry them: "(~11 s)" against "(~6 s)")."""
    study = make_study({**SPEC, "game": {"name": "bilinear", "dim": 2}, "rules": ["simultaneous"],
                        "steps": 40, "seeds": 1, "optimizer": {"name": "sgd", "lr": 0.1},
                        "init": {"dist": "constant", "scale": 1.0}})
    (batch,) = study.batches()
    monkeypatch.setattr(fuse, "AUTO_MIN_SECONDS", 0.0)  # never too short to consider compiling
    notes = []
    for cost in (1e3, 1e5):  # seconds: compiling would always take longer than stepping eagerly
        monkeypatch.setattr(fuse, "SECONDS_PER_NODE", cost)
        runs = run_batch(batch, study.thresholds, compile="auto").runs
        assert set(runs["stepping"]) == {"eager"}
        notes += list(runs["stepping_note"])
    assert notes[0].startswith("auto: compiling (") and "longer than stepping eagerly" in notes[0]
    assert len(set(notes)) == 1, notes
    assert not re.search(r"~|\d+(\.\d+)? ?s\b", notes[0]), notes[0]
