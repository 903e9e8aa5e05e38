"""Claims 2–4 of Goodfellow (2014, arXiv 1412.6515, §3) on the game gan1d, against closed forms,
scipy quadrature and finite differences: which generator cost gives the maximum-likelihood gradient,
the variance of its minibatch estimator, and the costs' slopes in training."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from gamedyn import StudyError, make_study
from gamedyn.costs import LOG4
from gamedyn.games import GAMES
from gamedyn.random import Streams
from gamedyn.rules import Context
from tests.conftest import series, simulate

T = torch.float64
COSTS = ["minimax", "non_saturating", "maximum_likelihood"]


def build(**params):
    cls = GAMES.get("gan1d")
    return cls.build([cls.resolve(params, "game")], T)


def gen(mu, log_sigma):
    return {"mu": torch.as_tensor(np.atleast_1d(mu), dtype=T),
            "log_sigma": torch.as_tensor(np.atleast_1d(log_sigma), dtype=T)}


def gen_grad(game, params):
    g = Context(game, {}).grad(params, players=("gen",))["gen"]
    return np.stack([g["mu"].numpy(), g["log_sigma"].numpy()], -1)


def quad(f, lo=-25, hi=25):
    return integrate.quad(f, lo, hi, limit=500, epsabs=1e-13, epsrel=1e-12)[0]


def kl_forward_grad(mu, sigma, m, s):
    """∇ KL(N(m, s²) ‖ N(μ, σ²)) in (μ, log σ): the MLE gradient."""
    return np.array([(mu - m) / sigma**2, 1.0 - (s**2 + (m - mu) ** 2) / sigma**2])


def kl_reverse_grad(mu, sigma, m, s):
    """∇ KL(N(μ, σ²) ‖ N(m, s²)) in (μ, log σ)."""
    return np.array([(mu - m) / s**2, sigma**2 / s**2 - 1.0])


def jsd(mu, log_sigma, m, s):
    p, q = stats.norm(m, s), stats.norm(mu, math.exp(log_sigma))
    lo, hi = min(m - 12 * s, mu - 12 * q.std()), max(m + 12 * s, mu + 12 * q.std())

    def half(a, b):
        return quad(lambda x: a.pdf(x) * (a.logpdf(x) - np.logaddexp(a.logpdf(x), b.logpdf(x))
                                          + math.log(2)), lo, hi)

    return 0.5 * half(p, q) + 0.5 * half(q, p)


def jsd_grad(mu, log_sigma, m, s, h=1e-4):
    return np.array([(jsd(mu + h, log_sigma, m, s) - jsd(mu - h, log_sigma, m, s)) / (2 * h),
                     (jsd(mu, log_sigma + h, m, s) - jsd(mu, log_sigma - h, m, s)) / (2 * h)])


POINTS = [(0.0, 0.0, 1.0, 1.0), (0.5, -0.6, -0.3, 1.2), (-1.0, 0.4, 0.5, 0.6), (2.0, 0.0, 0.0, 1.0)]


# --- claim 2: only the maximum-likelihood cost, against the optimal discriminator, is MLE --------

@pytest.mark.parametrize("mu,ls,m,s", POINTS)
def test_maximum_likelihood_cost_with_optimal_discriminator_is_the_forward_kl_gradient(mu, ls, m, s):
    """E_{p_g}[−(p_d/p_g) ∂ log p_g] = ∂ KL(p_d ‖ p_g), here with the pathwise gradient by quadrature;
    (0.5, −0.6) has σ_g² < σ_d²/2, where the estimator's variance is infinite but its mean is not."""
    game = build(cost="maximum_likelihood", data_mean=m, data_std=s)
    got = gen_grad(game, {"gen": gen(mu, ls)})[0]
    np.testing.assert_allclose(got, kl_forward_grad(mu, math.exp(ls), m, s), rtol=1e-9, atol=1e-12)
    metrics = game.metrics({"gen": gen(mu, ls)})
    assert float(metrics["grad.cos_mle"][0]) == pytest.approx(1.0, abs=1e-12)
    assert float(metrics["grad.ratio_mle"][0]) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("mu,ls,m,s", POINTS[1:])
def test_minimax_is_twice_the_jsd_gradient_and_non_saturating_is_reverse_kl_minus_that(mu, ls, m, s):
    """Minimax: ∇ V(D*, p_g) = ∇ 2 JSD (Goodfellow et al. 2014, Thm. 1, by the envelope theorem);
    non-saturating: ∇ KL(p_g ‖ p_d) − 2 ∇ JSD (Arjovsky & Bottou 2017, arXiv 1701.04862, Thm. 2.5)."""
    two_jsd = 2 * jsd_grad(mu, ls, m, s)
    mm = gen_grad(build(cost="minimax", data_mean=m, data_std=s), {"gen": gen(mu, ls)})[0]
    ns = gen_grad(build(cost="non_saturating", data_mean=m, data_std=s), {"gen": gen(mu, ls)})[0]
    np.testing.assert_allclose(mm, two_jsd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ns, kl_reverse_grad(mu, math.exp(ls), m, s) - two_jsd, rtol=1e-6, atol=1e-8)
    mle = kl_forward_grad(mu, math.exp(ls), m, s)
    for g, cost in ((mm, "minimax"), (ns, "non_saturating")):
        met = build(cost=cost, data_mean=m, data_std=s).metrics({"gen": gen(mu, ls)})
        cos = g @ mle / np.linalg.norm(g) / np.linalg.norm(mle)
        assert float(met["grad.cos_mle"][0]) == pytest.approx(cos, rel=1e-6)
        assert float(met["grad.ratio_mle"][0]) == pytest.approx(np.linalg.norm(g) / np.linalg.norm(mle),
                                                                rel=1e-6)
        assert abs(cos - 1) > 1e-3 or abs(np.linalg.norm(g) / np.linalg.norm(mle) - 1) > 1e-2


def test_maximum_likelihood_cost_fits_mixture_data_by_moments():
    game = build(cost="maximum_likelihood", data="mixture", data_mean=0.5, data_sep=3.0, data_std=0.4,
                 data_weight=0.3)
    m, v = float(game.data_dist.mean()[0]), float(game.data_dist.variance()[0])
    got = gen_grad(game, {"gen": gen([0.0, 1.0], [0.2, -0.3])})
    for i, (mu, ls) in enumerate(((0.0, 0.2), (1.0, -0.3))):
        np.testing.assert_allclose(got[i], kl_forward_grad(mu, math.exp(ls), m, math.sqrt(v)), rtol=1e-9)


def a_star_coefficients(mu, sigma, m, s):
    """log N(x; m, s²) − log N(x; μ, σ²) = w₀ + w₁x + w₂x²."""
    return np.array([-m**2 / (2 * s**2) + mu**2 / (2 * sigma**2) + math.log(sigma / s),
                     m / s**2 - mu / sigma**2, 1 / (2 * sigma**2) - 1 / (2 * s**2)])


@pytest.mark.parametrize("cost", COSTS)
def test_learned_discriminator_at_the_best_response_is_the_optimal_one(cost):
    mu, ls, m, s = 0.5, -0.2, 1.0, 0.8
    w_star = a_star_coefficients(mu, math.exp(ls), m, s)
    learned = build(cost=cost, discriminator="learned", data_mean=m, data_std=s)
    params = {"gen": gen(mu, ls), "disc": {"w": torch.tensor([w_star], dtype=T)}}
    grads = Context(learned, {}).grad(params)
    np.testing.assert_allclose(grads["disc"]["w"].numpy(), 0.0, atol=1e-10)   # logistic regression's optimum
    opt = gen_grad(build(cost=cost, data_mean=m, data_std=s), {"gen": gen(mu, ls)})
    np.testing.assert_allclose(gen_grad(learned, params), opt, rtol=1e-9)
    blind = {"gen": gen(mu, ls), "disc": {"w": torch.zeros(1, 3, dtype=T)}}   # D ≡ ½: no signal
    np.testing.assert_allclose(gen_grad(learned, blind), 0.0, atol=1e-14)
    met = learned.metrics(params)
    assert float(met["disc.value_gap"][0]) == pytest.approx(0.0, abs=1e-10)
    assert float(met["grad_opt.cos_mle"][0]) == pytest.approx(float(met["grad.cos_mle"][0]), rel=1e-9)


@pytest.mark.parametrize("cost", COSTS)
def test_at_the_data_every_cost_is_stationary_and_v_is_minus_log4(cost):
    game = build(cost=cost, discriminator="learned", data_mean=0.3, data_std=0.7)
    params = {"gen": gen(0.3, math.log(0.7)), "disc": {"w": torch.zeros(1, 3, dtype=T)}}
    grads = Context(game, {}).grad(params)
    for player in grads.values():
        for g in player.values():
            np.testing.assert_allclose(g.numpy(), 0.0, atol=1e-12)
    assert float(game.metrics(params)["value"][0]) == pytest.approx(-LOG4, abs=1e-12)
    eq = game.equilibrium()
    assert float(eq["gen"]["mu"]) == 0.3 and float(eq["gen"]["log_sigma"]) == pytest.approx(math.log(0.7))


@pytest.mark.parametrize("cost", ["maximum_likelihood", "non_saturating"])
def test_minibatch_generator_gradient_is_unbiased(cost):
    R = 4000
    game = build(cost=cost, gradient="minibatch", batch=8)
    game.rng = Streams(torch.arange(R))
    got = gen_grad(game, {"gen": gen(np.full(R, 1.0), np.zeros(R))})
    exact = gen_grad(build(cost=cost), {"gen": gen(1.0, 0.0)})[0]
    se = got.std(0) / math.sqrt(R)
    assert np.all(np.abs(got.mean(0) - exact) < 4 * se)


# --- claim 3: the variance of the minibatch estimator -------------------------------------------

@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0, 3.0])
def test_variance_and_effective_sample_size_of_the_maximum_likelihood_cost(mu):
    """Generator N(μ, 1), data N(0, 1), optimal D: a = −μ²/2 − μz, per-sample gradient μ e^{a}(1, z);
    tr Cov / ‖E g‖² = e^{μ²}(2 + 4μ²)/(1 + μ²) − 1 and the weights' ESS fraction is e^{−μ²}."""
    game = build(cost="maximum_likelihood", diagnostics="variance", mc_samples=20_000)
    game.rng = Streams(torch.arange(1))
    met = game.metrics({"gen": gen(mu, 0.0)})
    rel = math.exp(mu**2) * (2 + 4 * mu**2) / (1 + mu**2) - 1
    assert float(met["var.rel"][0]) == pytest.approx(rel, rel=1e-8)
    assert float(met["var.ess"][0]) == pytest.approx(math.exp(-(mu**2)), rel=1e-8)
    if mu <= 1.0:     # the Monte Carlo estimates agree where the fourth moments are moderate
        assert float(met["var.ess_mc"][0]) == pytest.approx(math.exp(-(mu**2)), rel=0.1)
        ci = float(met["var.rel_mc_ci95"][0])
        assert abs(float(met["var.rel_mc"][0]) - rel) < 2 * ci
    else:             # a few samples carry the gradient
        assert float(met["var.top1_mc"][0]) > 0.4


@pytest.mark.parametrize("cost", ["minimax", "non_saturating"])
def test_variance_of_the_other_costs_against_scipy(cost):
    """Per-sample gradient μ w(a)(1, z), w = σ(a) (minimax) or σ(−a) (non-saturating), a = −μ²/2 − μz."""
    mu = 1.5
    game = build(cost=cost, diagnostics="variance", mc_samples=20_000)
    game.rng = Streams(torch.arange(1))
    met = game.metrics({"gen": gen(mu, 0.0)})
    sign = 1.0 if cost == "minimax" else -1.0

    def w(z):
        return 1 / (1 + math.exp(-sign * (-mu**2 / 2 - mu * z)))

    phi = stats.norm.pdf
    m1, m2 = quad(lambda z: phi(z) * w(z)), quad(lambda z: phi(z) * w(z) * z)
    second = quad(lambda z: phi(z) * w(z) ** 2 * (1 + z * z))
    assert float(met["var.rel"][0]) == pytest.approx((second - m1**2 - m2**2) / (m1**2 + m2**2), rel=1e-8)
    assert float(met["var.ess"][0]) == pytest.approx(m1**2 / quad(lambda z: phi(z) * w(z) ** 2), rel=1e-8)
    top = float(met["var.top1_mc"][0])
    assert (top < 0.05) if cost == "non_saturating" else (top < 0.2)


# --- claim 4: the slopes in training ------------------------------------------------------------

def test_minimax_saturates_when_the_discriminator_rejects_the_generator():
    ends = {}
    for cost in COSTS:
        _, traj = simulate({"name": "gan1d", "cost": cost, "data_mean": 4.0, "diagnostics": "fit"},
                           "simultaneous", lr=0.05, init={"dist": "constant", "scale": 0.0}, steps=150,
                           record_every=150)
        ends[cost] = series(traj, "gen.mu")[-1]
        assert series(traj, "disc.D_fake")[0] < 0.05
    assert ends["minimax"] < 0.5 * ends["non_saturating"]
    assert ends["minimax"] < 0.5 * ends["maximum_likelihood"]


# --- fit labels, players, validation ------------------------------------------------------------

def test_non_saturating_collapses_on_a_mode_and_maximum_likelihood_covers_both():
    data = {"data": "mixture", "data_mean": 1.0, "data_std": 0.5, "data_weight": 0.3}
    labels = {}
    for cost in ("non_saturating", "maximum_likelihood"):
        runs, _ = simulate({"name": "gan1d", "cost": cost, "diagnostics": "fit", "nodes": 201,
                            "width": 10.0, **data}, "simultaneous",
                           lr=0.1, init={"dist": "constant", "scale": 0.0}, steps=200, record_every=100)
        labels[cost] = runs["fit"][0]
    assert labels == {"non_saturating": "mode_collapse", "maximum_likelihood": "fit"}


def test_optimal_discriminator_game_has_one_player():
    assert build().players == ("gen",) and set(build().shapes()) == {"gen"}
    assert build(discriminator="learned").shapes()["disc"] == {"w": (3,)}


@pytest.mark.parametrize("key,value", [("cost", "wgan"), ("discriminator", "mlp"), ("data_std", 0.0),
                                       ("diagnostics", "all"), ("nodes", 4)])
def test_bad_parameters_are_study_errors(key, value):
    with pytest.raises(StudyError) as e:
        make_study({"name": "t", "game": {"name": "gan1d", key: value}, "rules": ["simultaneous"],
                    "optimizer": {"lr": 0.1}, "steps": 5})
    assert e.value.key == f"game.{key}"
