"""Seed aggregates: Wilson intervals against the quadratic they solve, frequencies, medians and IQRs
against numpy on hand-made tables, failed seeds placed in their configuration, the report and figure."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from gamedyn import StudyError, make_study, orchestrate, run_study
from gamedyn.aggregate import aggregate, default_by, failed_configs, wilson

from .conftest import explode_on


def _wilson_by_roots(k: int, n: int) -> tuple[float, float]:
    """The Wilson interval as the set of p with (p̂ − p)² ≤ z² p(1 − p)/n: the two roots of
    (1 + z²/n) p² − (2p̂ + z²/n) p + p̂² = 0, z the normal's 0.975 quantile (scipy)."""
    z, p = norm.ppf(0.975), k / n
    roots = np.sort(np.roots([1 + z * z / n, -(2 * p + z * z / n), p * p]).real)
    return roots[0], roots[-1]


def test_wilson_interval_solves_its_quadratic():
    for n in (1, 2, 5, 8, 13, 100):
        k = np.arange(n + 1)
        lo, hi = wilson(k, np.full(n + 1, n))
        want = np.array([_wilson_by_roots(int(j), n) for j in k])
        np.testing.assert_allclose(lo, want[:, 0], atol=1e-7)
        np.testing.assert_allclose(hi, want[:, 1], atol=1e-7)
        assert (lo <= k / n).all() and (k / n <= hi).all()
    z = norm.ppf(0.975)
    lo, hi = wilson(np.array([0]), np.array([5]))   # none of 5: [0, z²/(n + z²)]
    assert lo[0] == 0 and hi[0] == pytest.approx(z * z / (5 + z * z))
    assert np.isnan(wilson(np.array([0]), np.array([0]))).all()


def _table() -> pd.DataFrame:
    """Two learning rates × two rules, 4 seeds each, made up: a runs table's columns."""
    rng = np.random.default_rng(0)
    rows = []
    labels = {(0.1, "sim"): ["diverged"] * 4, (0.1, "alt"): ["cycling"] * 3 + ["drifting"],
              (0.2, "sim"): ["diverged", "converged", "diverged", "diverged"],
              (0.2, "alt"): ["converged"] * 4}
    for (lr, rule), dyn in labels.items():
        for seed, d in enumerate(dyn):
            rows.append({"run_id": f"{rule}{lr}{seed}", "study": "s", "game": "bilinear",
                         "rule": rule, "seed": seed, "rule_label": rule, "optimizer.lr": lr,
                         "init.scale": 1.0 + seed, "dynamics": d, "fit": "n/a",
                         "growth_rate": rng.normal(), "final_distance": rng.exponential(),
                         "wall_time": rng.random()})
    return pd.DataFrame(rows)


def test_aggregate_counts_frequencies_and_quartiles_per_configuration():
    runs = _table()
    assert default_by(runs) == ["study", "game", "rule", "rule_label", "optimizer.lr"]
    agg = aggregate(runs)
    assert len(agg) == 4 and list(agg["runs"]) == [4, 4, 4, 4] and (agg["failed"] == 0).all()
    row = agg[(agg["rule"] == "sim") & (agg["optimizer.lr"] == 0.2)].iloc[0]
    assert (row["diverged"], row["converged"], row["cycling"]) == (0.75, 0.25, 0.0)
    lo, hi = _wilson_by_roots(3, 4)
    assert (row["diverged_lo"], row["diverged_hi"]) == pytest.approx((lo, hi), abs=1e-9)
    sub = runs[(runs["rule"] == "sim") & (runs["optimizer.lr"] == 0.2)]
    for m in ("growth_rate", "final_distance"):
        q1, q2, q3 = np.percentile(sub[m], [25, 50, 75])
        assert row[f"{m}_median"] == pytest.approx(q2) and row[f"{m}_iqr"] == pytest.approx(q3 - q1)
    by_rule = aggregate(runs, by="rule")       # the columns named, pooled over the rest
    assert list(by_rule["rule"]) == ["sim", "alt"] and list(by_rule["runs"]) == [8, 8]
    assert by_rule.iloc[1]["converged"] == 0.5 and by_rule.iloc[1]["cycling"] == 3 / 8
    with pytest.raises(StudyError, match="by: 'optimizer.momentum' is not a column"):
        aggregate(runs, by=["rule", "optimizer.momentum"])


def test_failed_seeds_are_placed_in_their_configuration():
    runs = _table()
    failed = pd.DataFrame([{"study": "s", "game": "bilinear", "rule": "sim", "rule_label": "sim",
                            "optimizer.lr": 0.1, "seed": 7},
                           {"study": "s", "game": "bilinear", "rule": "new", "rule_label": "new",
                            "optimizer.lr": 0.1, "seed": 3}])
    agg = aggregate(runs, failed=failed)
    sim = agg[(agg["rule"] == "sim") & (agg["optimizer.lr"] == 0.1)].iloc[0]
    assert (sim["runs"], sim["failed"], sim["failed_seeds"], sim["diverged"]) == (4, 1, "7", 1.0)
    new = agg[agg["rule"] == "new"].iloc[0]     # every run failed: no outcome, its seed listed
    assert (new["runs"], new["failed"], new["failed_seeds"]) == (0, 1, "3")
    assert np.isnan(new["converged"]) and np.isnan(new["converged_lo"])


TINY = {"name": "tiny", "game": "bilinear", "rules": ["simultaneous", "alternating"],
        "optimizer": {"name": "sgd", "lr": [0.3, 0.5]}, "init": {"dist": "normal", "scale": 1.0},
        "seeds": 3, "steps": 30, "figures": ["outcome_frequency"]}


def test_results_aggregate_report_and_figure_with_a_failed_rule(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(orchestrate, "run_batch", explode_on("alternating"))
    study = make_study(TINY)
    res = run_study(study, out=tmp_path, progress=False)
    f = failed_configs(res.study, res.failures)
    assert sorted(f["seed"]) == [0, 0, 1, 1, 2, 2] and set(f["rule"]) == {"alternating"}
    agg = res.aggregate()
    assert list(agg["rule"]) == ["simultaneous"] * 2 + ["alternating"] * 2
    assert list(agg["runs"]) == [3, 3, 0, 0] and list(agg["failed_seeds"]) == ["", "", "0,1,2",
                                                                                  "0,1,2"]
    assert agg["diverged"].iloc[:2].tolist() == [1.0, 1.0]     # x·y under simultaneous steps
    from gamedyn import cli

    assert cli.main(["report", str(res.path)]) == 0
    out = capsys.readouterr().out
    assert "Wilson" in out and "1.00 [0.44, 1.00]" in out and "0,1,2" in out
    png = res.path / "figures" / "outcome_frequency.png"
    assert png.exists() and png.stat().st_size > 10_000
