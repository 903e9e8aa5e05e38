"""Claim 1 of Goodfellow (2014, arXiv 1412.6515, §2): the games nce, sce and mle against closed forms
and scipy quadrature. SCE's expected gradient is ν/(1 + ν) (½ for ν = 1) times the MLE gradient at
every parameter value; NCE's is not; a stale copy breaks the identity."""

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


def build(name, **params):
    cls = GAMES.get(name)
    return cls.build([cls.resolve(params, "game")], T)


def model(mu, log_sigma, c=None):
    p = {"mu": torch.as_tensor(mu, dtype=T), "log_sigma": torch.as_tensor(log_sigma, dtype=T)}
    if c is not None:
        p["c"] = torch.as_tensor(c, dtype=T)
    return p


def grad(game, params):
    return {k: v.numpy() for k, v in Context(game, {}).grad(params)["disc"].items()}


def mle_gradient(mu, sigma, m, v):
    """∇ of E_{p_d}[−log N(x; μ, σ²)] in (μ, log σ) for data with mean m and variance v."""
    return np.array([(mu - m) / sigma**2, 1.0 - (v + (m - mu) ** 2) / sigma**2])


def quad(f, lo=-30, hi=30):
    return integrate.quad(f, lo, hi, limit=400, epsabs=1e-12, epsrel=1e-11)[0]


def nce_gradient(theta, noise, nu, data, normalised):
    """The NCE loss gradient −∇J by scipy quadrature: −E_{p_d}[(1 − σ(G)) ∇ log p̃] + ν E_{p_n}[σ(G) ∇ log p̃],
    G = log p̃(x; θ) − log p_n(x) − log ν; ``noise`` = (log pdf, pdf) of p_n; θ = (μ, log σ, c)."""
    mu, s, c = theta
    sig = math.exp(s)

    def log_model(x):
        return -0.5 * ((x - mu) / sig) ** 2 + (c if c is not None else -s - 0.5 * math.log(2 * math.pi))

    def score(x):
        z = (x - mu) / sig
        out = [z / sig, z * z - (1.0 if normalised else 0.0)]
        return out + ([1.0] if c is not None else [])

    def G(x):
        return log_model(x) - noise[0](x) - math.log(nu)

    sigm = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    k = 3 if c is not None else 2
    def component(i):
        return (-quad(lambda x: data.pdf(x) * (1 - sigm(G(x))) * score(x)[i])
                + nu * quad(lambda x: noise[1](x) * sigm(G(x)) * score(x)[i]))

    return np.array([component(i) for i in range(k)])


# --- the identity -----------------------------------------------------------------------------

def test_mle_and_sce_gradients_for_model_n_theta_1_and_data_n_0_1():
    """Model N(θ, 1), data N(0, 1): the MLE gradient is (θ, −θ²) in (μ, log σ), SCE's (θ/2, −θ²/2)."""
    theta = np.array([-2.0, -0.5, 0.3, 1.0, 3.0])
    params = {"disc": model(theta, np.zeros(5))}
    g_mle, g_sce = grad(build("mle"), params), grad(build("sce"), params)
    np.testing.assert_allclose(g_mle["mu"], theta, rtol=1e-12)
    np.testing.assert_allclose(g_mle["log_sigma"], -theta**2, rtol=1e-12)
    np.testing.assert_allclose(g_sce["mu"], theta / 2, rtol=1e-12)
    np.testing.assert_allclose(g_sce["log_sigma"], -theta**2 / 2, rtol=1e-12)


@pytest.mark.parametrize("nu", [1.0, 0.25, 3.0])
@pytest.mark.parametrize("data", ["gaussian", "mixture"])
def test_sce_is_nu_over_one_plus_nu_times_mle_at_any_parameter(nu, data):
    rng = np.random.default_rng(1)
    mu, ls = rng.normal(0, 2, 8), rng.normal(0, 0.5, 8)
    kw = dict(data=data, data_mean=0.7, data_std=0.6, data_sep=3.0, data_weight=0.3)
    params = {"disc": model(mu, ls)}
    g = grad(build("sce", nu=nu, **kw), params)
    game = build("mle", **kw)
    m, v = float(game.data_dist.mean()[0]), float(game.data_dist.variance()[0])
    ref = mle_gradient(mu, np.exp(ls), m, v)
    factor = nu / (1 + nu)
    np.testing.assert_allclose(g["mu"], factor * ref[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g["log_sigma"], factor * ref[1], rtol=1e-9, atol=1e-12)
    metrics = build("sce", nu=nu, **kw).metrics(params)
    np.testing.assert_allclose(metrics["grad.ratio_mle"].numpy(), factor, rtol=1e-9)
    np.testing.assert_allclose(metrics["grad.cos_mle"].numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(metrics["value"].numpy(),                # D ≡ 1/(1 + ν) at the copy
                               math.log(1 / (1 + nu)) + math.log(nu / (1 + nu)), rtol=1e-12)


def test_unnormalised_sce_has_the_negative_phase_and_leaves_c_alone():
    mu, ls, c = np.array([0.5, -1.0]), np.array([0.3, -0.2]), np.array([0.0, 2.0])
    params = {"disc": model(mu, ls, c)}
    g = grad(build("sce", model="unnormalised", data_mean=1.0, data_std=0.8), params)
    ref = mle_gradient(mu, np.exp(ls), 1.0, 0.64)
    np.testing.assert_allclose(g["mu"], ref[0] / 2, rtol=1e-10)
    np.testing.assert_allclose(g["log_sigma"], ref[1] / 2, rtol=1e-10)
    np.testing.assert_allclose(g["c"], 0.0, atol=1e-12)
    g_mle = grad(build("mle", model="unnormalised", data_mean=1.0, data_std=0.8), params)
    np.testing.assert_allclose(g_mle["c"], 0.0, atol=1e-12)
    np.testing.assert_allclose(g_mle["mu"], ref[0], rtol=1e-10)


# --- NCE: a fixed noise does not give the MLE gradient ---------------------------------------

@pytest.mark.parametrize("unnormalised", [False, True])
def test_nce_gradient_matches_scipy_quadrature_and_is_not_proportional_to_mle(unnormalised):
    nu, ns = 2.0, 1.5
    game = build("nce", model="unnormalised" if unnormalised else "gaussian", nu=nu, noise_std=ns,
                 data_mean=1.0, data_std=0.7)
    theta = (0.2, 0.4, -0.3 if unnormalised else None)
    params = {"disc": model([theta[0]], [theta[1]], None if theta[2] is None else [theta[2]])}
    g = grad(game, params)
    noise = stats.norm(0, ns)
    ref = nce_gradient(theta, (noise.logpdf, noise.pdf), nu, stats.norm(1.0, 0.7), not unnormalised)
    got = np.array([g[k][0] for k in ("mu", "log_sigma", "c") if k in g])
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-11)
    m = game.metrics(params)
    assert abs(float(m["grad.cos_mle"][0]) - 1.0) > 1e-3 or abs(float(m["grad.ratio_mle"][0]) - 0.5) > 1e-2


def test_nce_is_consistent_and_learns_the_log_normaliser():
    game = build("nce", model="unnormalised", noise_std=2.0, data_mean=1.0, data_std=0.5)
    c_star = -math.log(0.5) - 0.5 * math.log(2 * math.pi)
    at_truth = grad(game, {"disc": model([1.0], [math.log(0.5)], [c_star])})
    for k in at_truth:
        np.testing.assert_allclose(at_truth[k], 0.0, atol=1e-12)
    off = grad(game, {"disc": model([1.0], [math.log(0.5)], [c_star + 0.5])})
    assert off["c"][0] > 0.05          # too much mass: descending c lowers it
    runs, traj = simulate({"name": "nce", "model": "unnormalised", "noise_std": 2.0, "data_mean": 1.0,
                           "data_std": 0.5}, "simultaneous", lr=0.2,
                          init={"dist": "constant", "scale": 0.0}, steps=600, record_every=100)
    assert series(traj, "model.log_norm_error")[-1] == pytest.approx(0.0, abs=1e-3)
    assert runs["dynamics"][0] == "converged" and runs["fit"][0] == "fit"


def test_value_of_nce_and_mle():
    game = build("nce", nu=1.0, noise_std=2.0)
    params = {"disc": model([0.5], [0.1])}
    assert float(game.metrics(params)["value"][0]) == pytest.approx(-float(game.losses(params)["disc"][0]),
                                                                     rel=1e-12)
    mle = build("mle", data_mean=0.5, data_std=1.0)
    pd_, pm = stats.norm(0.5, 1.0), stats.norm(0.0, 1.0)
    mix = lambda x: 0.5 * (pd_.pdf(x) + pm.pdf(x))  # noqa: E731
    js = 0.5 * quad(lambda x: pd_.pdf(x) * np.log(pd_.pdf(x) / mix(x)), -15, 15) + \
        0.5 * quad(lambda x: pm.pdf(x) * np.log(pm.pdf(x) / mix(x)), -15, 15)
    v = float(mle.metrics({"disc": model([0.0], [0.0])})["value"][0])
    assert v == pytest.approx(-LOG4 + 2 * js, abs=1e-10)


# --- a stale copy ----------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [-1.0, 0.4])
def test_a_stale_copy_is_nce_against_the_old_model(offset):
    game = build("sce", copy="stale", data_mean=1.0, data_std=0.7)
    theta, phi = (0.2, 0.3), (0.2 + offset, 0.1)
    params = {"disc": model([theta[0]], [theta[1]]), "gen": model([phi[0]], [phi[1]])}
    g = grad(game, params)
    noise = stats.norm(phi[0], math.exp(phi[1]))
    ref = nce_gradient((*theta, None), (noise.logpdf, noise.pdf), 1.0, stats.norm(1.0, 0.7), True)
    np.testing.assert_allclose([g["mu"][0], g["log_sigma"][0]], ref, rtol=1e-8)
    half = 0.5 * mle_gradient(theta[0], math.exp(theta[1]), 1.0, 0.49)
    assert np.linalg.norm(np.array([g["mu"][0], g["log_sigma"][0]]) - half) > 0.05 * np.linalg.norm(half)
    fresh = build("sce", copy="stale", data_mean=1.0, data_std=0.7)
    same = {"disc": params["disc"], "gen": params["disc"]}
    assert float(fresh.metrics(same)["grad.proj_mle"][0]) == pytest.approx(0.5, rel=1e-10)


def test_stale_copy_refreshed_every_step_is_sce():
    common = {"data_mean": 2.0, "data_std": 0.5}
    _, fresh = simulate({"name": "sce", **common}, "simultaneous", lr=0.1,
                        init={"dist": "constant", "scale": 0.0}, steps=40, record_every=10)
    _, stale = simulate({"name": "sce", "copy": "stale", **common},
                        {"name": "alternating", "first": "gen", "disc_steps": 1},
                        optimizer={"name": "sgd", "lr": 0.1, "gen": {"lr": 1.0}},
                        init={"dist": "constant", "scale": 0.0}, steps=40, record_every=10)
    np.testing.assert_allclose(series(stale, "disc.mu"), series(fresh, "disc.mu"), rtol=1e-12)
    _, every4 = simulate({"name": "sce", "copy": "stale", **common},
                         {"name": "alternating", "first": "gen", "disc_steps": 4},
                         optimizer={"name": "sgd", "lr": 0.1, "gen": {"lr": 1.0}},
                         init={"dist": "constant", "scale": 0.0}, steps=10, record_every=10)
    assert abs(series(every4, "disc.mu")[-1] - series(fresh, "disc.mu")[-1]) > 1e-3


# --- training: SCE at 2η follows MLE at η ------------------------------------------------------

def test_exact_sce_at_twice_the_learning_rate_follows_mle():
    common = {"data_mean": 2.0, "data_std": 0.5}
    init = {"dist": "constant", "scale": 0.0}
    _, mle = simulate({"name": "mle", **common}, "simultaneous", lr=0.05, init=init, steps=60,
                      record_every=5)
    runs, sce = simulate({"name": "sce", **common}, "simultaneous", lr=0.1, init=init, steps=60,
                         record_every=5)
    for v in ("disc.mu", "disc.log_sigma"):
        np.testing.assert_allclose(series(sce, v), series(mle, v), rtol=1e-11, atol=1e-13)
    ratio, norm = series(sce, "grad.ratio_mle"), series(sce, "grad.norm_mle")
    np.testing.assert_allclose(ratio[norm > 1e-6], 0.5, rtol=1e-9)


def test_minibatch_sce_gradient_is_half_the_mle_gradient_in_expectation():
    R = 4000
    game = build("sce", gradient="minibatch", batch=16)
    game.rng = Streams(torch.arange(R))
    params = {"disc": model(np.full(R, 1.0), np.zeros(R))}
    g = grad(game, params)
    for k, expected in (("mu", 0.5), ("log_sigma", -0.5)):       # θ/2 and −θ²/2 at θ = 1
        se = g[k].std() / math.sqrt(R)
        assert abs(g[k].mean() - expected) < 4 * se


def test_minibatch_sce_at_twice_the_learning_rate_tracks_mle_in_expectation():
    common = {"data_mean": 2.0, "data_std": 0.5, "gradient": "minibatch", "batch": 16}
    init = {"dist": "constant", "scale": 0.0}
    ends = {}
    for name, lr in (("mle", 0.05), ("sce", 0.1)):
        _, traj = simulate({"name": name, **common}, "simultaneous", lr=lr, init=init, steps=30,
                           record_every=30, seeds=24)
        t = traj[(traj["variable"] == "disc.mu") & (traj["step"] == 30)]
        ends[name] = t["value"].to_numpy()
    diff = ends["sce"].mean() - ends["mle"].mean()
    se = math.sqrt(ends["sce"].var() / 24 + ends["mle"].var() / 24)
    assert abs(diff) < 4 * se + 1e-3
    assert 0.5 < ends["mle"].mean() < 2.0                           # it did move towards 2


# --- parameters are validated ------------------------------------------------------------------

@pytest.mark.parametrize("game,key", [
    ({"name": "sce", "nu": 0.0}, "game.nu"),
    ({"name": "nce", "noise_std": -1.0}, "game.noise_std"),
    ({"name": "mle", "model": "flow"}, "game.model"),
    ({"name": "sce", "copy": "old"}, "game.copy"),
    ({"name": "mle", "data": "mixture", "data_weight": 1.0}, "game.data_weight"),
    ({"name": "nce", "gradient": "stochastic"}, "game.gradient"),
])
def test_bad_parameters_are_study_errors(game, key):
    with pytest.raises(StudyError) as e:
        make_study({"name": "t", "game": game, "rules": ["simultaneous"], "optimizer": {"lr": 0.1},
                    "steps": 5})
    assert e.value.key == key


@pytest.mark.invariance
@pytest.mark.parametrize("game", [
    {"name": "sce", "gradient": "minibatch", "batch": 8},
    {"name": "nce", "gradient": "minibatch", "batch": 8, "data": "mixture"},
    {"name": "gan1d", "gradient": "minibatch", "batch": 8, "discriminator": "learned",
     "diagnostics": "variance", "mc_samples": 200},
])
def test_minibatch_runs_do_not_depend_on_their_batch_mates(game):
    from gamedyn.batch import run_batch

    spec = {"name": "t", "game": game, "rules": ["simultaneous"], "optimizer": {"lr": [0.05, 0.1]},
            "seeds": 2, "steps": 6, "record_every": 2, "init": {"dist": "normal", "scale": 0.5}}
    study = make_study(spec)
    together = run_batch(study.runs).trajectories
    alone = run_batch([study.runs[3]]).trajectories
    rid = study.runs[3].run_id
    mine = together[together["run_id"].astype(str) == rid].reset_index(drop=True)
    np.testing.assert_array_equal(mine["value"].to_numpy(), alone["value"].to_numpy())
