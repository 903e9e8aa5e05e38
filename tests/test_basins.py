"""Basins of attraction: starts on a grid or a Sobol sample, attractor ids and settling steps, against
maps derived by hand and independent numpy iterations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gamedyn import StudyError, make_study
from gamedyn.basins import fractions, identify
from gamedyn.orchestrate import run_study


def spec(**kw):
    base = {"name": "b", "game": "double_well", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 0.05}, "steps": 200, "record_every": 5,
            "init": {"grid": {"gen.x": [-2, 2, 9], "disc.y": [-1, 1, 5]}}, "lyapunov": "off",
            "figures": []}
    return {**base, **kw}


def test_grid_expands_to_the_product_first_coordinate_slowest():
    runs = make_study(spec()).runs
    assert len(runs) == 45
    xs = [r.columns["init.gen.x"] for r in runs]
    ys = [r.columns["init.disc.y"] for r in runs]
    gx, gy = np.meshgrid(np.linspace(-2, 2, 9), np.linspace(-1, 1, 5), indexing="ij")
    np.testing.assert_allclose(xs, gx.ravel(), atol=1e-12)
    np.testing.assert_allclose(ys, gy.ravel(), atol=1e-12)
    assert runs[0].config["init"]["gen"] == {"x": -2.0}
    assert len(make_study(spec()).batches()) == 1        # the starts are one run axis


def test_sobol_is_scipy_scrambled_sobol_in_the_box():
    from scipy.stats import qmc

    s = spec(init={"sobol": {"gen.x": [-2, 2], "disc.y": [0, 1], "n": 16}})
    runs = make_study(s).runs
    pts = np.array([[r.columns["init.gen.x"], r.columns["init.disc.y"]] for r in runs])
    try:
        unit = qmc.Sobol(d=2, scramble=True, rng=0).random(16)
    except TypeError:
        unit = qmc.Sobol(d=2, scramble=True, seed=0).random(16)
    np.testing.assert_allclose(pts, [-2, 0] + unit * [4, 1], atol=1e-10)


@pytest.mark.parametrize("init, key", [
    ({"grid": {"gen.x": [-2, 2]}}, "init.grid.gen.x"),
    ({"grid": {"gen.x": [-2, 2, 1.5]}}, "init.grid.gen.x"),
    ({"grid": {"x": [-2, 2, 3]}}, "init.grid.x"),
    ({"grid": {"gen.w": [-2, 2, 3]}}, "init.grid.gen.w"),
    ({"grid": {}}, "init.grid"),
    ({"sobol": {"gen.x": [-2, 2], "n": 0}}, "init.sobol.n"),
    ({"grid": {"gen.x": [-2, 2, 3]}, "sobol": {"gen.x": [-2, 2], "n": 4}}, "init.sobol"),
    ({"grid": {"gen.x": [-2, 2, 3]}, "gen": {"x": 1.0}}, "init.grid.gen.x"),
])
def test_malformed_layouts_name_the_key(init, key):
    with pytest.raises(StudyError) as e:
        make_study(spec(init=init))
    assert e.value.key == key and "\n" not in str(e.value)


def _settle(u0, lr, steps, every, tol=1e-2):
    """The double well's 1-D map iterated in numpy: its limit and settling record per start."""
    us = [np.asarray(u0, float)]
    for _ in range(steps):
        u = us[-1]
        us.append(u - lr * (u ** 3 - u))
    return np.stack(us[::every], 1)


def test_double_well_basins_are_the_quadrants_and_ids_are_stable(tmp_path):
    """The basin of the minimum (sx, sy) is the quadrant of the start's signs (the game's
    docstring); the axes end on saddles and the origin stays: nine attractors, numbered in
    lexicographic order of their points, the same ids whatever the batches."""
    s = make_study(spec(max_batch=7))                  # several batches
    res = run_study(s, out=tmp_path, progress=False, compile="off")
    runs = res.runs
    assert len(s.batches()) > 1 and runs["batch_id"].nunique() > 1
    x0, y0 = runs["init.gen.x"].to_numpy(), runs["init.disc.y"].to_numpy()
    expect = np.stack([np.sign(x0), np.sign(y0)], 1)
    ends = np.array([json.loads(t) for t in runs["attractor_point"]])
    np.testing.assert_allclose(ends, expect, atol=1e-4)
    points = sorted({(a, b) for a, b in expect.tolist()})
    want = [f"eq:{points.index((a, b))}" for a, b in expect.tolist()]
    assert runs["attractor"].tolist() == want
    assert (runs["dynamics"] == "converged").all()
    # settle_step: the first record from which |z_t - z_end| <= 1e-2 |z_0 - z_end|, by numpy
    tx, ty = _settle(x0, 0.05, 200, 5), _settle(y0, 0.05, 200, 5)
    gap = np.hypot(tx - tx[:, -1:], ty - ty[:, -1:])
    ok = gap <= 1e-2 * np.maximum(gap[:, :1], 1e-300)
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 1), 1), 1)
    np.testing.assert_array_equal(runs["settle_step"].to_numpy(), 5.0 * stays.argmax(1))
    # the basin fractions: the quadrants' share of the grid's 45 starts (the axes: 9 + 5 - 1)
    table = fractions(runs)
    assert table["runs"].tolist() == [45]
    for a, (px, py) in zip([f"eq:{i}" for i in range(9)], points):
        n = ((np.sign(x0) == px) & (np.sign(y0) == py)).sum()
        assert table[a].iloc[0] == pytest.approx(n / 45)


def test_identify_clusters_equilibria_and_cycles_and_orders_them():
    """Ids from end signatures alone: nearby ends are one equilibrium, cycles differ by radius or
    period; ids follow the points' order, not the rows'."""
    rows = pd.DataFrame({
        "dynamics": ["converged", "cycling", "converged", "cycling", "diverged", "drifting",
                     "converged", "cycling"],
        "attractor_point": [json.dumps([1.0, 0.0]), json.dumps([0.0, 0.0]),
                            json.dumps([-1.0, 0.0]), json.dumps([0.0, 0.0]), None, None,
                            json.dumps([1.0 + 1e-4, 0.0]), json.dumps([0.0, 0.001])],
        "attractor_radius_lo": [np.nan, 2.0, np.nan, 0.5, np.nan, np.nan, np.nan, 2.01],
        "attractor_radius_hi": [np.nan, 2.2, np.nan, 0.6, np.nan, np.nan, np.nan, 2.2],
        "period": [np.nan, 40.0, np.nan, 40.0, np.nan, np.nan, np.nan, 41.0],
    })
    ids = identify(rows).tolist()
    assert ids == ["eq:1", "cycle:1", "eq:0", "cycle:0", "diverged", "drifting", "eq:1", "cycle:1"]
    assert identify(rows.iloc[::-1].reset_index(drop=True)).tolist() == ids[::-1]


def test_dense_clustering_equals_the_kd_tree_one(monkeypatch):
    """Small sets are clustered without scipy (a dense distance matrix): the same partition."""
    from gamedyn import basins

    rng = np.random.default_rng(0)
    chain = np.stack([np.arange(40) * 0.09, np.zeros(40)], 1)          # linked only end to end
    blobs = np.concatenate([rng.normal(c, 0.02, (30, 2)) for c in ([3, 3], [3, 3.5], [-2, 1])])
    for features in (chain, blobs, np.concatenate([chain, blobs]), rng.uniform(-1, 1, (300, 3))):
        dense = basins._clusters(features, 0.1)
        monkeypatch.setattr(basins, "DENSE_CELLS", 0)
        sparse = basins._clusters(features, 0.1)
        monkeypatch.undo()
        # the same partition, labelled 0…K−1: labels map one to one
        assert set(dense.tolist()) == set(range(len(set(dense.tolist()))))
        pairs = set(zip(dense.tolist(), sparse.tolist()))
        assert len(pairs) == len(set(dense.tolist())) == len(set(sparse.tolist()))
    assert len(set(basins._clusters(chain, 0.1).tolist())) == 1
