"""gamedyn.costs and gamedyn.densities against closed forms, scipy and finite differences."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import ndtr

from gamedyn.costs import (
    COSTS,
    LOG4,
    VALUE_AT_EQUILIBRIUM,
    gauss_hermite,
    generator_cost,
    normal_nodes,
    optimal_discriminator,
    optimal_logit,
    value,
)
from gamedyn.densities import Mixture, best_gaussian_kl, jsd, kl, modes_covered, w1
from gamedyn.random import Streams

T = torch.float64


def gauss(m, s):
    return Mixture.gaussian(torch.tensor([float(m)], dtype=T), torch.tensor([float(s)], dtype=T))


def mixture(p, m1, m2, s):
    t = lambda v: torch.tensor([v], dtype=T)  # noqa: E731
    return Mixture(t([p, 1 - p]), t([m1, m2]), t([s, s]))


def quad(f, lo=-40, hi=40):
    return integrate.quad(f, lo, hi, limit=400, epsabs=1e-13, epsrel=1e-12)[0]


U, W = normal_nodes(801, 16.0)


# --- the value function and the optimal discriminator -----------------------------------------

def test_value_at_the_optimal_discriminator_is_minus_log4_plus_twice_jsd():
    pd_, pg = stats.norm(0.3, 0.8), stats.norm(-0.5, 1.3)
    d, g = gauss(0.3, 0.8), gauss(-0.5, 1.3)
    xd, wd = d.nodes(U, W)
    xg, wg = g.nodes(U, W)
    v = value(optimal_logit(d.log_prob(xd), g.log_prob(xd)), wd,
              optimal_logit(d.log_prob(xg), g.log_prob(xg)), wg)
    m = lambda x: 0.5 * (pd_.pdf(x) + pg.pdf(x))  # noqa: E731
    js = 0.5 * quad(lambda x: pd_.pdf(x) * np.log(pd_.pdf(x) / m(x)), -15, 15) + \
        0.5 * quad(lambda x: pg.pdf(x) * np.log(pg.pdf(x) / m(x)), -15, 15)
    assert float(v[0]) == pytest.approx(-LOG4 + 2 * js, abs=1e-10)
    assert float(jsd(d, g, U, W)[0]) == pytest.approx(js, abs=1e-10)


def test_the_optimal_discriminator_maximises_v_and_gives_minus_log4_at_equality():
    d, g = gauss(1.0, 0.7), gauss(0.0, 1.0)
    xd, wd = d.nodes(U, W)
    xg, wg = g.nodes(U, W)
    a_d, a_g = optimal_logit(d.log_prob(xd), g.log_prob(xd)), optimal_logit(d.log_prob(xg), g.log_prob(xg))
    best = value(a_d, wd, a_g, wg)
    for bump in (lambda x: 0.3 + 0 * x, lambda x: 0.2 * x, lambda x: -0.1 * x * x):
        assert float(value(a_d + bump(xd), wd, a_g + bump(xg), wg)[0]) < float(best[0])
    same = value(torch.zeros_like(xd), wd, torch.zeros_like(xd), wd)
    assert float(same[0]) == pytest.approx(VALUE_AT_EQUILIBRIUM, abs=1e-14)
    np.testing.assert_allclose(optimal_discriminator(np.array([1.0, 3.0]), np.array([1.0, 1.0])),
                               [0.5, 0.75])


# --- the generator costs -----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(COSTS))
def test_costs_match_their_formulas_in_D_and_their_slopes_are_derivatives(name):
    D = np.linspace(0.01, 0.99, 50)
    a = np.log(D / (1 - D))
    expected = {"minimax": np.log(1 - D), "non_saturating": -np.log(D),
                "maximum_likelihood": -D / (1 - D)}[name]
    cost = generator_cost(name)
    np.testing.assert_allclose(cost.of_D(torch.tensor(D)).numpy(), expected, rtol=1e-12)
    h = 1e-6
    fd = (cost.f(torch.tensor(a + h)) - cost.f(torch.tensor(a - h))).numpy() / (2 * h)
    np.testing.assert_allclose(cost.slope(torch.tensor(a)).numpy(), fd, rtol=1e-7, atol=1e-9)
    weight = {"minimax": D, "non_saturating": 1 - D, "maximum_likelihood": D / (1 - D)}[name]
    np.testing.assert_allclose(cost.weight(torch.tensor(a)).numpy(), weight, rtol=1e-12)


def test_unknown_cost_is_named():
    with pytest.raises(ValueError, match="accepted: minimax, non_saturating, maximum_likelihood"):
        generator_cost("wasserstein")


# --- quadrature ---------------------------------------------------------------------------------

def test_trapezoid_nodes_integrate_density_ratios_where_gauss_hermite_fails():
    """E_{p_g}[e^{a*} h] = E_{p_d} h under p_g's nodes. (1) p_g = N(0, 0.5²), p_d = N(0.5, 1): the
    ratio grows like exp(0.375 u²). (2) p_g = N(0, 2²), p_d = N(5, 0.1²): a narrow bump 2.5 σ_g out,
    which Gauss–Hermite's sparse outer nodes miss."""
    def under_gen(u, w, g, d, h):
        x = g[0] + g[1] * u
        r = np.exp(stats.norm(*d).logpdf(x.numpy()) - stats.norm(*g).logpdf(x.numpy()))
        return float((w * torch.tensor(r * h(x.numpy()))).sum())

    one = lambda x: 1.0 + 0 * x  # noqa: E731
    trap = normal_nodes(801, 16.0)
    assert under_gen(*trap, (0, 0.5), (0.5, 1.0), one) == pytest.approx(1.0, abs=1e-12)
    assert under_gen(*trap, (0, 2.0), (5.0, 0.1), lambda x: x) == pytest.approx(5.0, abs=1e-10)
    assert abs(under_gen(*gauss_hermite(100), (0, 2.0), (5.0, 0.1), lambda x: x) - 5.0) > 0.1
    u, w = gauss_hermite(10)
    assert float((w * u**4).sum()) == pytest.approx(3.0, rel=1e-12)   # exact for polynomials


def test_gauss_hermite_tensor_grid_integrates_products_of_moments():
    """In d dimensions the grid integrates E[ε₁² ε₂⁴ ε₃⁶] = 1 · 3 · 15 = 45 (Gaussian moments
    (k − 1)!!) exactly, with weights the products of the 1-D ones."""
    u1, w1 = gauss_hermite(5)
    u, w = gauss_hermite(5, dim=3, dtype=torch.float32)
    assert u.shape == (125, 3) and w.shape == (125,) and u.dtype == torch.float32
    u, w = gauss_hermite(5, dim=3)
    assert float(w.sum()) == pytest.approx(1.0, rel=1e-14)
    assert float((w * u[:, 0] ** 2 * u[:, 1] ** 4 * u[:, 2] ** 6).sum()) == pytest.approx(45.0, rel=1e-12)
    np.testing.assert_allclose(u[:7, 2].numpy(), np.r_[u1.numpy(), u1[:2].numpy()])
    assert float(w[7]) == pytest.approx(float(w1[0] * w1[1] * w1[2]), rel=1e-14)


# --- densities ---------------------------------------------------------------------------------

def test_mixture_log_prob_cdf_and_moments_match_scipy():
    mix = mixture(0.3, -1.0, 2.5, 0.6)
    x = torch.linspace(-4, 6, 41, dtype=T)[None]
    ref = 0.3 * stats.norm(-1, 0.6).pdf(x[0]) + 0.7 * stats.norm(2.5, 0.6).pdf(x[0])
    np.testing.assert_allclose(np.exp(mix.log_prob(x)[0].numpy()), ref, rtol=1e-12)
    cdf = 0.3 * stats.norm(-1, 0.6).cdf(x[0]) + 0.7 * stats.norm(2.5, 0.6).cdf(x[0])
    np.testing.assert_allclose(mix.cdf(x)[0].numpy(), cdf, rtol=1e-12, atol=1e-15)
    assert float(mix.mean()[0]) == pytest.approx(0.3 * -1 + 0.7 * 2.5)
    assert float(mix.variance()[0]) == pytest.approx(0.36 + 0.3 * 0.7 * 3.5**2)


def test_mixture_samples_have_the_mixture_moments():
    mix = mixture(0.3, -1.0, 2.5, 0.6)
    x = mix.sample(Streams(torch.arange(4)), 20_000).numpy()
    assert x.shape == (4, 20_000)
    se = math.sqrt(float(mix.variance()[0]) / 20_000)
    np.testing.assert_allclose(x.mean(1), float(mix.mean()[0]), atol=5 * se)
    np.testing.assert_allclose((x < 0.75).mean(1), 0.3, atol=0.01)


def test_kl_jsd_w1_and_mode_cover_against_closed_forms_and_scipy():
    d, g = gauss(0.0, 1.0), gauss(1.5, 0.5)
    closed = math.log(0.5 / 1.0) + (1.0 + 1.5**2) / (2 * 0.25) - 0.5       # KL(N(0,1) ‖ N(1.5, .5²))
    assert float(kl(d, g, U, W)[0]) == pytest.approx(closed, rel=1e-12)
    mix = mixture(0.3, -1.0, 2.5, 0.6)
    pm = lambda x: 0.3 * stats.norm(-1, 0.6).pdf(x) + 0.7 * stats.norm(2.5, 0.6).pdf(x)  # noqa: E731
    ref = quad(lambda x: abs(ndtr((x - 1.5) / 0.5) - 0.3 * ndtr((x + 1) / 0.6)
                             - 0.7 * ndtr((x - 2.5) / 0.6)), -8, 10)
    assert float(w1(g, mix)[0]) == pytest.approx(ref, rel=1e-6)
    # the same number scipy gives for large samples (up to their noise)
    rng = np.random.default_rng(0)
    n = 50_000
    a = rng.normal(1.5, 0.5, n)
    b = np.where(rng.uniform(size=n) < 0.3, rng.normal(-1, 0.6, n), rng.normal(2.5, 0.6, n))
    assert stats.wasserstein_distance(a, b) == pytest.approx(ref, abs=0.02)
    best = quad(lambda x: pm(x) * np.log(pm(x) / stats.norm(0.75, 1).pdf(x)), -8, 10)
    q = gauss(float(mix.mean()[0]), math.sqrt(float(mix.variance()[0])))
    assert best_gaussian_kl(mix, U, W) == pytest.approx(float(kl(mix, q, U, W)[0]), rel=1e-12)
    assert best_gaussian_kl(mix, U, W) < best        # moment matching beats another Gaussian
    assert float(modes_covered(mix, q)[0]) == 2 and float(modes_covered(mix, gauss(2.5, 0.6))[0]) == 1
