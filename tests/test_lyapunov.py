"""Finite-time Lyapunov exponents against closed forms of linear maps (numpy's SVD and eigenvalues,
hand-derived iteration matrices), the diagnosis columns, the study key, and the run axis."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import StudyError, lyapunov, make_study, stability
from gamedyn.batch import run_batch
from gamedyn.diagnose import lyapunov_columns
from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.random import Streams
from gamedyn.rules import RULES

from .conftest import build, simulate

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def step_map(rule, lrs, game=None, rule_cfg=None, start=((1.0, 1.0), (0.5, -1.0), (2.0, 0.3))):
    """The step map of ``rule`` with SGD rates ``lrs`` (one run each) on ``game`` (x·y), from
    initial points ``start`` (x, y) and the state ``rule.init`` gives there."""
    R = len(lrs)
    game = game or build(GAMES, "bilinear", [{}])
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": e} for e in lrs]) for p in ("gen", "disc")}
    shapes = game.shapes()
    (gname, gshape), = shapes["gen"].items()
    (dname, dshape), = shapes["disc"].items()
    xy = torch.tensor(start[:R], dtype=DT)
    params = {"gen": {gname: xy[:, :1].expand(R, *gshape).clone()},
              "disc": {dname: xy[:, 1:].expand(R, *dshape).clone()}}
    return stability.StepMap(game, build(RULES, rule, [rule_cfg or {}] * R), opts, params=params)


def test_simultaneous_gda_on_xy_has_both_exponents_half_log_one_plus_eta_squared():
    lrs = [0.05, 0.2, 0.5]
    lam, se = lyapunov.exponents(step_map("simultaneous", lrs), steps=20, every=5)
    want = np.array([0.5 * math.log(1 + e * e) for e in lrs])
    np.testing.assert_allclose(lam[:, 0], want, rtol=1e-12)
    np.testing.assert_allclose(lam[:, 1], want, rtol=1e-12)
    assert (lam[:, 2:] < -3).all()   # SGD's velocity is the last gradient: slaved, annihilated
    assert (se[:, :2] < 1e-12).all()


def test_alternating_gda_on_xy_is_a_rotation_below_eta_2_and_a_saddle_above():
    """Gen first on x·y: x' = x − ηy, y' = y + ηx' gives F′ = [[1, −η], [η, 1 − η²]], det 1, trace
    2 − η²: for η < 2 eigenvalues e^{±iθ}, cos θ = 1 − η²/2 (a rotation in a skewed basis: λ = 0,
    0); for η > 2 real μ, 1/μ with μ + 1/μ = 2 − η² (λ = ±log|μ|)."""
    lrs = [0.3, 1.0, 2.5]
    lam, se = lyapunov.exponents(step_map("alternating", lrs, rule_cfg={"first": "gen"}),
                                 steps=400, every=5)
    for lr, row, err in zip(lrs, lam, se):
        if lr < 2:
            assert abs(row[0]) < 2e-4 and abs(row[1]) < 2e-4, (lr, row)
            assert abs(row[0]) <= 3 * err[0] + 1e-12
        else:
            tr = 2 - lr * lr
            mu = abs((tr - math.sqrt(tr * tr - 4)) / 2)
            np.testing.assert_allclose(row[:2], [math.log(mu), -math.log(mu)], rtol=1e-9)


def test_a_linear_game_has_the_log_moduli_of_its_map_and_convergence_is_negative():
    """Simultaneous SGD on xᵀAy (dim 2, A random): F′ = I − η[[0, A], [−Aᵀ, 0]] on z, eigenvalues
    1 ± iησ_k (σ_k the singular values of A, numpy's SVD), so λ = ½ log(1 + η²σ_k²), each twice.
    Extragradient on x·y: F′ = (1 − η²)I − ηJ, |μ|² = (1 − η²)² + η² < 1: both exponents negative."""
    game = build(GAMES, "bilinear", [{"dim": 2, "A": "random", "A_seed": 3}])
    sigma = np.linalg.svd(game.matrix.numpy(), compute_uv=False)
    start = ((1.0, -0.5), (0.3, 0.7))
    lrs = [0.5, 1.0]   # distinct exponents far enough apart for the frame to align in 300 steps
    lam, _ = lyapunov.exponents(step_map("simultaneous", lrs, game=game, start=start),
                                steps=300, every=5)
    for lr, row in zip(lrs, lam):
        want = np.repeat(np.sort(0.5 * np.log(1 + lr**2 * sigma**2))[::-1], 2)
        np.testing.assert_allclose(row[:4], want, rtol=2e-3)   # finite time: the frame aligns
        # within each pair's plane only as fast as the velocity coordinates' transient dies out
    lam, _ = lyapunov.exponents(step_map("extragradient", [0.1, 0.5]), steps=20, every=5)
    for lr, row in zip([0.1, 0.5], lam):
        want = 0.5 * math.log((1 - lr * lr) ** 2 + lr * lr)
        np.testing.assert_allclose(row[:2], [want, want], rtol=1e-9)


def test_runs_table_columns_agree_with_the_labels_and_a_run_alone_equals_it_in_a_batch():
    runs, _ = simulate("bilinear", "simultaneous", lr=[0.1, 0.3], steps=200, record_every=5)
    np.testing.assert_allclose(runs["lyapunov_1"], [0.5 * math.log(1 + e * e) for e in (0.1, 0.3)],
                               rtol=1e-12)
    assert list(runs["dynamics"]) == ["diverged"] * 2 and runs["lyapunov_agrees"].all()
    assert list(runs["lyapunov_dynamics"]) == ["diverged"] * 2
    assert len(json.loads(runs["lyapunov"][0])) == 4
    runs, _ = simulate("bilinear", "extragradient", lr=0.3, steps=200, record_every=5)
    assert runs["dynamics"][0] == "converged" and runs["lyapunov_agrees"][0]
    assert runs["lyapunov_1"][0] == pytest.approx(0.5 * math.log((1 - 0.09) ** 2 + 0.09))

    spec = {"name": "t", "game": "dirac", "rules": [{"name": "alternating", "first": "gen"}],
            "optimizer": {"name": "sgd", "lr": [0.1, 0.3, 0.7]},
            "init": {"dist": "normal", "scale": 1.0}, "seeds": 2, "steps": 60, "record_every": 5}
    study = make_study(spec)
    (batch,) = study.batches()
    together = run_batch(batch, study.thresholds, compile="off").runs.set_index("run_id")
    cols = ["lyapunov_1", "lyapunov_1_se", "lyapunov", "lyapunov_agrees"]
    for run in batch[1::2]:
        alone = run_batch([run], study.thresholds, compile="off").runs.set_index("run_id")
        pd.testing.assert_frame_equal(alone[cols], together.loc[[run.run_id], cols])


def test_the_exponents_draw_from_the_analysis_stream_only():
    game = build(GAMES, "gan1d", [{"discriminator": "learned", "gradient": "minibatch",
                                   "batch": 8}] * 2)
    game.rng = Streams(torch.tensor([0, 1]))
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": 0.05}, {"lr": 0.2}]) for p in ("gen", "disc")}
    rule = build(RULES, "simultaneous", [{}] * 2)
    params = stability.equilibrium_params(game, 2) if game.equilibrium() else None
    from gamedyn.init import initial_params

    params = initial_params(game, [{"dist": "normal", "scale": 1.0}] * 2, [0, 1])
    from gamedyn.rules import Context

    state = rule.init(Context(game, opts), params)
    counter = game.rng.counter
    lam, se = lyapunov.run_exponents(game, rule, opts, params, state, {"every": 5, "steps": 10})
    assert game.rng.counter == counter and np.isfinite(lam[:, 0]).all()


def test_agreement_is_judged_on_the_labels_scale_within_two_standard_errors():
    lam = np.array([[0.005], [-0.01], [1e-4], [0.01], [0.01], [1e-4], [np.nan]])
    se = np.array([[0.0], [0.0], [1e-5], [0.006], [0.0], [0.0], [np.nan]])
    dyn = np.array(["diverged", "converged", "cycling", "cycling", "drifting", "converged",
                    "diverged"], dtype=object)
    cols = lyapunov_columns((lam, se), dyn, np.full(7, 500.0), 1.25, horizon=100)
    tau, band = math.log(1.25) / 500, math.log(1.25) / 100   # the window's scale; the horizon's
    assert tau < 0.005 and 1e-4 < tau   # the first is diverged on the window's scale
    assert list(cols["lyapunov_dynamics"]) == ["diverged", "converged", "neutral", "diverged",
                                               "diverged", "neutral", None]
    assert 0.01 - 2 * 0.006 < band < 0.01   # the fourth's interval reaches the neutral band
    assert list(cols["lyapunov_agrees"]) == [True, True, True, True, False, False, pd.NA]
    none = lyapunov_columns(None, dyn, np.full(7, 500.0), 1.25)
    assert np.isnan(none["lyapunov_1"]).all() and none["lyapunov_agrees"].isna().all()


def test_the_study_key_is_validated_and_off_turns_the_columns_off():
    base = {"name": "t", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 20}
    for bad, where in [("on", "lyapunov: 'on' is not accepted"),
                       ({"every": 0}, "lyapunov.every: 0 is not accepted"),
                       ({"period": 3}, "lyapunov.period: unknown key; accepted: every, steps")]:
        with pytest.raises(StudyError, match=where):
            make_study({**base, "lyapunov": bad})
    assert make_study({**base, "lyapunov": {"steps": 7}}).runs[0].config["lyapunov"] == \
        {"every": lyapunov.DEFAULTS["every"], "steps": 7}
    assert "lyapunov" not in make_study(base).runs[0].config   # the default leaves run ids alone
    runs, _ = simulate("bilinear", "simultaneous", steps=20, lyapunov="off")
    assert runs["lyapunov_1"].isna().all() and runs["lyapunov_agrees"].isna().all()


def test_on_by_default_only_for_small_games_under_cheap_rules():
    """Without the key: exponents for a game of <= 100 parameters under a rule of <= 10
    evaluations per step; not where a step is differentiated through a long inner loop."""
    game = GAMES.get("dirac").build([{"loss": "gan"}], torch.float64, "cpu")
    work = {name: RULES.get(name).work(make_study({
        "name": "w", "game": "dirac", "rules": [name], "optimizer": {"name": "sgd"}, "steps": 1,
    }).runs[0].config["rule"]) for name in ("simultaneous", "sga", "cgd", "best_response")}
    assert work == {"simultaneous": 1.0, "sga": 3.0, "cgd": 102.0, "best_response": 51.0}
    assert [lyapunov.setting(None, game, w) is not None for w in work.values()] == [
        True, True, False, False]
    assert lyapunov.setting({"every": 2, "steps": 4}, game, 102.0) == {"every": 2, "steps": 4}
    assert lyapunov.setting("off", game, 1.0) is None


def test_the_lyapunov_figure_draws_each_runs_exponent_beside_its_label(tmp_path):
    """studies/lyapunov.yaml shrunk: the figure is written, and the runs it draws on bilinear
    simultaneous SGD carry the closed form it draws, ½ log(1 + η²)."""
    from gamedyn import load_study, run_study
    from gamedyn.figures import FIGURES

    from .conftest import ROOT

    spec = load_study(ROOT / "studies" / "lyapunov.yaml").spec
    spec = {**spec, "game": "bilinear", "rules": ["simultaneous", "alternating"], "seeds": 2,
            "steps": 200, "lyapunov": {"every": 5, "steps": 50}}
    res = run_study(make_study(spec), out=tmp_path, progress=False)
    sim = res.runs[res.runs["rule"] == "simultaneous"]
    np.testing.assert_allclose(sim["lyapunov_1"], 0.5 * np.log1p(sim["optimizer.lr"] ** 2),
                               rtol=1e-6)
    assert FIGURES.get("lyapunov")(res, tmp_path / "l.png").stat().st_size > 10_000
