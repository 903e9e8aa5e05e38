"""The dynamics labels on synthetic trajectories whose answers are known in closed form."""

import numpy as np
import pytest

from gamedyn.diagnose import DEFAULTS, diagnose, masked_slope, oscillation


def label(distance, coords, steps=None, stopped=None, **th):
    distance = np.atleast_2d(distance)
    coords = coords.reshape(distance.shape + (-1,))
    R, T = distance.shape
    steps = np.arange(T) if steps is None else steps
    stopped = np.zeros(R, bool) if stopped is None else stopped
    return diagnose(steps, distance, coords, np.full(R, T), stopped, th)


def test_geometric_growth_is_diverged_with_its_exact_rate():
    k = np.arange(1001)
    d = 2.0 * np.exp(0.003 * k)
    out = label(d, d)
    assert out["dynamics"][0] == "diverged"
    assert out["growth_rate"][0] == pytest.approx(0.003, rel=1e-9)


def test_geometric_decay_is_converged():
    k = np.arange(1001)
    d = np.exp(-0.002 * k)  # only e^{-1} over the late window: converged by the steady shrink
    assert label(d, d)["dynamics"][0] == "converged"


def test_reaching_the_tolerance_is_converged_even_if_noisy():
    rng = np.random.default_rng(0)
    d = np.concatenate([np.linspace(1, 1e-5, 100), 1e-5 * (1 + rng.random(400))])
    assert label(d, d)["dynamics"][0] == "converged"


@pytest.mark.parametrize("period", [7.3, 40.0, 125.0])
def test_a_sustained_orbit_is_cycling_with_its_period(period):
    k = np.arange(1001)
    x = np.cos(2 * np.pi * k / period + 0.3)
    y = 0.5 * np.sin(2 * np.pi * k / period + 0.3)
    d = np.hypot(x, y)
    out = label(d, np.stack([x, y], -1))
    assert out["dynamics"][0] == "cycling"
    assert out["period"][0] == pytest.approx(period, rel=0.01)
    assert out["amplitude"][0] == pytest.approx(1.0, rel=0.01)


def test_period_is_in_steps_when_records_are_sparse():
    steps = np.arange(0, 5000, 10)
    x = np.cos(2 * np.pi * steps / 333.0)
    out = label(np.abs(x) + 1, x, steps=steps)
    assert out["period"][0] == pytest.approx(333.0, rel=0.01)


def test_monotone_slow_motion_is_drifting():
    k = np.arange(1001)
    d = 1.0 + 1e-4 * k     # grows 5% over the late window: no steady exponential trend, no cycles
    assert label(d, d)["dynamics"][0] == "drifting"


def test_coming_to_rest_away_from_the_equilibrium_is_spurious():
    """A damped spiral c_t = c* + 0.99ᵗ(cos t, sin t) into a point c* = (3, 0) at distance 3 from
    the equilibrium (the origin): the distance does not fall (rules 2 and 4), the last move is
    0.99^999 ≈ 4·10⁻⁵ of the first (the largest), below converge_tol: spurious, though the
    coordinates cross their mean often (cycling, before rule 5). The same spiral round the
    origin converges; with ``complete=False`` (coordinates that are tensor norms) or a looser
    tolerance it is not judged at rest."""
    k = np.arange(1000)
    spiral = 0.99 ** k * np.stack([np.cos(k), np.sin(k)])
    rest = (spiral + np.array([[3.0], [0.0]])).T
    out = label(np.hypot(*rest.T), rest)
    assert out["dynamics"][0] == "spurious"
    assert out["final_move"][0] == pytest.approx(0.99 ** 998, rel=1e-6)
    assert label(np.hypot(*spiral), spiral.T)["dynamics"][0] == "converged"
    d, c = np.hypot(*rest.T)[None], rest[None]
    args = (np.arange(1000), d, c, np.full(1, 1000), np.zeros(1, bool))
    assert diagnose(*args, complete=False)["dynamics"][0] == "cycling"
    assert diagnose(*args, {"converge_tol": 1e-5})["dynamics"][0] == "cycling"


def test_growth_from_far_below_the_start_is_not_divergence():
    """The signal fell from 1 to 10⁻³·⁵ and then grows geometrically, 10× over the late window, but
    ends below where it started: drifting, not diverged (the field norm of a policy still
    saturating). Ending above the start, the same growth is divergence."""
    k = np.arange(1000)
    d = np.where(k < 500, 10 ** (-3.5 * k / 500), 10 ** (-3.5 + (k - 500) / 500))
    coords = np.stack([np.log1p(k), np.sin(k / 50)], -1)      # moving: not at rest
    assert label(d, coords)["dynamics"][0] == "drifting"
    assert label(d * 10 ** 3, coords)["dynamics"][0] == "drifting"
    assert label(np.r_[d[:1], d[1:] * 10 ** 4], coords)["dynamics"][0] == "diverged"


def test_stopped_run_is_diverged():
    d = np.ones(50)
    out = label(d, d, stopped=np.array([True]))
    assert out["dynamics"][0] == "diverged"


def test_thresholds_change_the_decision():
    k = np.arange(1001)
    d = np.exp(0.0003 * k)   # ×1.16 over the late window
    assert label(d, d)["dynamics"][0] != "diverged"
    assert label(d, d, growth_factor=1.1)["dynamics"][0] == "diverged"


def test_runs_are_labelled_independently_in_one_call():
    k = np.arange(801)
    grow, orbit = np.exp(0.01 * k), np.cos(2 * np.pi * k / 50)
    d = np.stack([grow, np.abs(orbit) + 1, np.exp(-0.01 * k)])
    coords = np.stack([grow, orbit, np.exp(-0.01 * k)])[:, :, None]
    out = diagnose(k, d, coords, np.full(3, len(k)), np.zeros(3, bool), DEFAULTS)
    assert list(out["dynamics"]) == ["diverged", "cycling", "converged"]


def test_masked_slope_is_the_least_squares_slope_over_the_mask():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 30))
    y = rng.normal(size=(3, 30))
    mask = rng.uniform(size=(3, 30)) < 0.6
    mask[2] = False
    mask[2, 4] = True                                    # one point: no slope, 0
    got = masked_slope(x, y, mask)
    for r in range(2):
        np.testing.assert_allclose(got[r], np.polyfit(x[mask[r]], y[r, mask[r]], 1)[0], rtol=1e-10)
    assert got[2] == 0.0


def test_oscillation_of_a_sine_has_its_period_amplitude_and_cycles():
    """c(t) = 3 sin(2π(t + ½)/40) + 0.1 (beside a quieter coordinate) at t = 0…399: 19 crossings of
    the mean (t = 20k − ½, k = 1…19), so cycles = (19 − 1)/2 = 9 and period = 2 (379.5 − 19.5)/18
    = 40; the samples nearest the peaks sit ½ step off them: amplitude 3 cos(2π·½/40) = 3 cos(π/40)."""
    t = np.arange(400.0)
    coords = np.stack([3 * np.sin(2 * np.pi * (t + 0.5) / 40) + 0.1, 0.01 * np.cos(t)], -1)[None]
    period, amplitude, cycles = oscillation(t, coords, np.ones((1, 400), bool))
    assert period[0] == pytest.approx(40.0, rel=1e-12)
    assert amplitude[0] == pytest.approx(3 * np.cos(np.pi / 40), rel=1e-12)
    assert cycles[0] == 9.0
