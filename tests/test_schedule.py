"""A study starts its longest batches first (so that no worker idles at the end), and the order
changes nothing in its tables."""

from __future__ import annotations

import pandas as pd

from gamedyn import make_study, orchestrate, run_study
from gamedyn.results import TIMING_COLUMNS

SPEC = {"name": "order", "game": {"name": "dirac", "loss": "wgan"},
        "rules": ["simultaneous", {"name": "best_response", "max_inner": 4},
                  {"name": "alternating", "disc_steps": 3}, "extragradient"],
        "optimizer": {"name": "sgd", "lr": 0.1}, "seeds": [1, 2, 3], "steps": 40,
        "record_every": 5, "max_batch": 2}


def test_longest_batches_first_and_the_same_tables(tmp_path, monkeypatch):
    study = make_study(SPEC)
    order = []
    real = orchestrate.run_batch

    def watched(runs, *args, **kwargs):
        cfg = runs[0].config
        order.append((cfg["rule"]["name"], cfg["steps"], len(runs)))
        return real(runs, *args, **kwargs)

    monkeypatch.setattr(orchestrate, "run_batch", watched)
    res = run_study(study, out=tmp_path / "a", progress=False, compile="off")
    # evaluations per step: best_response 1 + 4/2, alternating 1 + 3, extragradient 2, simultaneous 1;
    # (batches of 2 and 1 runs pad to the same run axis, and the steps are the same)
    work = {"best_response": 3, "alternating": 4, "extragradient": 2, "simultaneous": 1}
    assert [work[rule] for rule, _, _ in order] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert len(order) == len(study.batches())
    # the tables follow the study's order, whatever order the batches ran in
    assert list(res.runs["run_id"]) == [r.run_id for r in study.runs]
    monkeypatch.setattr(orchestrate, "_work", lambda batch: 0.0)  # study order (a stable sort)
    again = run_study(study, out=tmp_path / "b", progress=False, compile="off")
    pd.testing.assert_frame_equal(res.runs.drop(columns=list(TIMING_COLUMNS)),
                                  again.runs.drop(columns=list(TIMING_COLUMNS)))
    pd.testing.assert_frame_equal(res.trajectories, again.trajectories)
