"""The phase-plane figure draws an even sample of each panel's runs, says so, and reads only the
trajectories it draws (its time does not grow with the study)."""

from __future__ import annotations

import matplotlib.pyplot
import pytest

from gamedyn import results as results_module
from gamedyn import run_study
from gamedyn.figures import phase_plane as pp
from gamedyn.study import make_study


def test_shown_is_an_even_deterministic_sample():
    ids = [f"r{i}" for i in range(10)]
    assert pp.shown(ids, 20) == ids
    assert pp.shown(ids, 4) == ["r0", "r3", "r6", "r9"]


def test_a_panel_says_how_many_runs_it_shows_and_the_whole_table_is_not_read(tmp_path, monkeypatch):
    study = make_study({"name": "pp", "game": "bilinear", "rules": ["simultaneous"],
                        "optimizer": {"name": "sgd", "lr": [0.05, 0.1]}, "seeds": 4, "steps": 20,
                        "record_every": 5, "init": {"dist": "normal", "scale": 1.0}})
    res = run_study(study, out=tmp_path, progress=False, compile="off")
    monkeypatch.setattr(pp, "MAX_SHOWN", 3)
    monkeypatch.setattr(results_module.Results, "trajectories",
                        property(lambda self: pytest.fail("the figure read the whole table")))
    figures = []
    monkeypatch.setattr(matplotlib.pyplot, "close", figures.append)
    path = pp.phase_plane(res, tmp_path / "pp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = figures[0].axes
    assert ax.get_title().endswith("3 of 8 runs shown")
    assert len(ax.collections[0].get_segments()) == 3
