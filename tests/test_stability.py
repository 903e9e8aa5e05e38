"""Local stability predictions against hand-derived iteration matrices (numpy eigenvalues), closed
forms, and the growth of simulated distances."""

import math

import numpy as np
import pytest
import torch

from gamedyn import stability
from gamedyn.games import GAMES
from gamedyn.games.base import Game
from gamedyn.optim import OPTIMIZERS
from gamedyn.regularizers import REGULARIZERS
from gamedyn.rules import RULES

from .conftest import build, series, simulate

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def sgd(lrs, momenta=None):
    momenta = momenta if momenta is not None else [0.0] * len(lrs)
    configs = [{"lr": e, "momentum": b} for e, b in zip(lrs, momenta)]
    return {p: build(OPTIMIZERS, "sgd", configs) for p in ("gen", "disc")}


def bilinear(dim=1, A="identity", seed=0):
    return build(GAMES, "bilinear", [{"dim": dim, "A": A, "A_seed": seed}])


def rho(M):
    return np.abs(np.linalg.eigvals(M)).max()


def assert_same_spectrum(got, want, tol=1e-9):
    """Equal multisets of eigenvalues (greedy nearest matching)."""
    got, want = list(np.asarray(got)), list(np.asarray(want))
    assert len(got) == len(want)
    for w in want:
        i = int(np.argmin([abs(g - w) for g in got]))
        assert abs(got[i] - w) < tol, (w, got)
        got.pop(i)


# --- hand-derived iteration matrices (SGD, learning rate η, heavy-ball momentum β) --------------
# Field of x·y: ξ = (∂_x xy, ∂_y(−xy)) = (y, −x). State order (x, y, u, w): parameters, then the
# velocities of gen and disc (u' = βu + g_x, x' = x − ηu', likewise for y).

def simultaneous_xy(e, b):
    # u' = βu + y, w' = βw − x, x' = x − ηu', y' = y − ηw'
    return np.array([[1, -e, -e * b, 0], [e, 1, 0, -e * b], [0, 1, b, 0], [-1, 0, 0, b]], float)


def alternating_gen_first_xy(e, b):
    # u' = βu + y, x' = x − ηu' = x − ηy − ηβu, w' = βw − x', y' = y − ηw'
    return np.array([[1, -e, -e * b, 0], [e, 1 - e * e, -e * e * b, -e * b], [0, 1, b, 0],
                     [-1, e, e * b, b]], float)


def alternating_disc_first_xy(e, b):
    # w' = βw − x, y' = y − ηw' = y + ηx − ηβw, u' = βu + y', x' = x − ηu'
    return np.array([[1 - e * e, -e, -e * b, e * e * b], [e, 1, 0, -e * b], [e, 1, b, -e * b],
                     [-1, 0, 0, b]], float)


def test_state_layout_is_params_then_velocities():
    step = stability.StepMap(bilinear(), build(RULES, "simultaneous", [{}]), sgd([0.1]))
    assert step.layout.names() == ["params.gen.x[0]", "params.disc.y[0]",
                                   "state.opt.gen.velocity.x[0]", "state.opt.disc.velocity.y[0]"]
    assert torch.equal(step.x0, torch.zeros(1, 4, dtype=DT))
    assert step.residual().tolist() == [0.0]


def test_simultaneous_sgd_on_xAy_has_radius_sqrt_1_plus_eta2_sigma2():
    """M = [[I − ηJ, 0], [J, 0]] on (z, v), J = [[0, A], [−Aᵀ, 0]]: ρ = max √(1 + η²σ²)."""
    game, lrs = bilinear(3, "random", seed=1), [0.05, 0.2, 0.7]
    A = game.matrix.numpy()
    sigma = np.linalg.svd(A, compute_uv=False)
    J = np.block([[np.zeros((3, 3)), A], [-A.T, np.zeros((3, 3))]])
    rule, opts = build(RULES, "simultaneous", [{}]), sgd(lrs)
    pred = stability.predict(game, rule, opts, strict=True)
    jac = stability.step_jacobian(game, rule, opts).numpy()
    assert jac.shape == (3, 12, 12)
    for r, e in enumerate(lrs):
        M = np.block([[np.eye(6) - e * J, np.zeros((6, 6))], [J, np.zeros((6, 6))]])
        assert pred[r] == pytest.approx(max(math.sqrt(1 + e * e * s * s) for s in sigma), rel=1e-12)
        assert pred[r] == pytest.approx(rho(M), rel=1e-12)
        assert_same_spectrum(np.linalg.eigvals(jac[r]), np.linalg.eigvals(M))


def test_alternating_on_xy_is_marginal_below_eta_2_and_unstable_above():
    """gen first, SGD: [[1, −η], [η, 1 − η²]] (det 1, trace 2 − η²): ρ = 1 for η < 2, > 1 for η > 2."""
    lrs = [0.1, 0.5, 1.5, 1.99, 2.01, 2.5, 3.0]
    rule = build(RULES, "alternating", [{"first": "gen"}])
    pred = stability.predict(bilinear(), rule, sgd(lrs), strict=True)
    for r, e in enumerate(lrs):
        want = rho(np.array([[1, -e], [e, 1 - e * e]]))
        assert pred[r] == pytest.approx(want, rel=1e-9)
        if e < 2:
            assert pred[r] == pytest.approx(1.0, abs=1e-9)
        else:
            assert pred[r] > 1.1
    assert pred[-1] == pytest.approx((7 + math.sqrt(45)) / 2, rel=1e-12)  # η = 3: λ² + 7λ + 1 = 0


MOMENTUM_RUNS = [(0.1, -0.5), (0.5, -0.3), (0.5, 0.3), (1.0, -0.1), (0.3, 0.0), (0.5, 0.9)]


@pytest.mark.parametrize(("rule_cfg", "hand"), [
    ({"name": "simultaneous"}, simultaneous_xy),
    ({"name": "alternating", "first": "gen"}, alternating_gen_first_xy),
    ({"name": "alternating", "first": "disc"}, alternating_disc_first_xy),
])
def test_momentum_jacobian_is_the_hand_derived_4x4_matrix(rule_cfg, hand):
    """The whole Jacobian, entry by entry, in the (x, y, u, w) order, for per-run (η, β) of one batch."""
    cfg = {k: v for k, v in rule_cfg.items() if k != "name"}
    rule = build(RULES, rule_cfg["name"], [cfg])
    lrs, betas = zip(*MOMENTUM_RUNS)
    opts = sgd(lrs, betas)
    jac = stability.step_jacobian(bilinear(), rule, opts).numpy()
    pred = stability.predict(bilinear(), rule, opts, strict=True)
    for r, (e, b) in enumerate(MOMENTUM_RUNS):
        M = hand(e, b)
        np.testing.assert_allclose(jac[r], M, atol=1e-14)
        assert pred[r] == pytest.approx(rho(M), rel=1e-10)


def test_negative_momentum_helps_alternating_but_not_simultaneous_play():
    """Gidel et al. (2019, arXiv 1807.04740): on xy, simultaneous play diverges for every β, while
    alternating play with β < 0 converges (ρ < 1), and β > 0 makes both worse."""
    lrs, betas = [0.5, 0.5, 0.5, 0.5], [-0.5, -0.3, 0.0, 0.5]
    sim = stability.predict(bilinear(), build(RULES, "simultaneous", [{}]), sgd(lrs, betas))
    alt = stability.predict(bilinear(), build(RULES, "alternating", [{"first": "gen"}]),
                            sgd(lrs, betas))
    want_sim = [rho(simultaneous_xy(e, b)) for e, b in zip(lrs, betas)]
    want_alt = [rho(alternating_gen_first_xy(e, b)) for e, b in zip(lrs, betas)]
    np.testing.assert_allclose(sim, want_sim, rtol=1e-10)
    np.testing.assert_allclose(alt, want_alt, rtol=1e-10)
    assert (sim > 1).all()
    assert alt[0] < 0.97 and alt[1] < 0.97 and alt[2] == pytest.approx(1.0) and alt[3] > 1.2


@pytest.mark.parametrize(("loss", "fprime0"), [("gan", 0.5), ("nsgan", 0.5), ("wgan", 1.0)])
def test_dirac_field_eigenvalues_are_plus_minus_i_fprime0(loss, fprime0):
    """ξ = (ψ f′(ψθ), −θ f′(ψθ)) (gan, wgan): ∂ξ/∂(θ, ψ) at 0 = [[0, f′(0)], [−f′(0), 0]], with
    f′(0) = σ(0) = ½ for f(t) = −log(1 + e^{−t}) and 1 for f(t) = t; the non-saturating generator's
    ψ f′(−ψθ) has the same linear part."""
    game = build(GAMES, "dirac", [{"loss": loss}])
    got = stability.field_eigenvalues(game)
    assert got.shape == (1, 2)
    hand = np.array([[0, fprime0], [-fprime0, 0]])
    assert_same_spectrum(got[0], np.linalg.eigvals(hand), tol=1e-12)
    assert_same_spectrum(got[0], [1j * fprime0, -1j * fprime0], tol=1e-12)


def test_bilinear_field_eigenvalues_are_plus_minus_i_sigma():
    game = bilinear(4, "random", seed=2)
    sigma = np.linalg.svd(game.matrix.numpy(), compute_uv=False)
    assert_same_spectrum(stability.field_eigenvalues(game, n_runs=2)[1],
                         np.concatenate([1j * sigma, -1j * sigma]))


def test_r1_regularizer_damps_the_dirac_gan():
    """R1 adds γψ to ξ_ψ: ∂ξ = [[0, ½], [−½, γ]], and simultaneous SGD's M = I − η ∂ξ has ρ < 1 for
    small η (Mescheder, Geiger & Nowozin 2018), while without it ρ = √(1 + η²/4) > 1."""
    game = build(GAMES, "dirac", [{"loss": "gan"}])
    gammas, lrs = [0.3, 1.0, 3.0], [0.2, 0.2, 0.2]
    reg = build(REGULARIZERS, "r1", [{"gamma": g} for g in gammas])
    ev = stability.field_eigenvalues(game, regularizer=reg, n_runs=3)
    rule = build(RULES, "simultaneous", [{}])
    pred = stability.predict(game, rule, sgd(lrs), regularizer=reg, strict=True)
    plain = stability.predict(game, rule, sgd(lrs), strict=True)
    for r, (g, e) in enumerate(zip(gammas, lrs)):
        F = np.array([[0, 0.5], [-0.5, g]])
        assert_same_spectrum(ev[r], np.linalg.eigvals(F), tol=1e-12)
        assert pred[r] == pytest.approx(rho(np.eye(2) - e * F), rel=1e-12)
        assert pred[r] < 1
        assert plain[r] == pytest.approx(math.sqrt(1 + e * e / 4), rel=1e-12)


def test_extragradient_and_optimistic_match_their_iteration_matrices():
    """Rules with more state, through the same machinery. Extragradient: z' = (I − ηJ + η²J²) z;
    optimistic (state z and the previous field p): z' = z − η(2Jz − p), p' = Jz (+ the velocity,
    which feeds nothing back when β = 0, so zero eigenvalues)."""
    assert "extragradient" in RULES and "optimistic" in RULES, RULES.names()
    game, lrs = bilinear(2, "random", seed=4), [0.1, 0.4]
    A = game.matrix.numpy()
    J = np.block([[np.zeros((2, 2)), A], [-A.T, np.zeros((2, 2))]])
    eye, Z = np.eye(4), np.zeros((4, 4))
    eg = stability.step_jacobian(game, build(RULES, "extragradient", [{}]), sgd(lrs)).numpy()
    og = stability.step_jacobian(game, build(RULES, "optimistic", [{}]), sgd(lrs)).numpy()
    for r, e in enumerate(lrs):
        M = eye - e * J + e * e * J @ J
        assert_same_spectrum(np.linalg.eigvals(eg[r]), np.concatenate([np.linalg.eigvals(M),
                                                                        np.zeros(4)]))
        opt = np.block([[eye - 2 * e * J, e * eye], [J, Z]])
        assert_same_spectrum(np.linalg.eigvals(og[r]), np.concatenate([np.linalg.eigvals(opt),
                                                                        np.zeros(4)]), tol=1e-7)


# --- the prediction against simulated trajectories -----------------------------------------

def observed_rate(d, window):
    """Mean growth factor per step of ``d`` over its last ``window`` steps."""
    return (d[-1] / d[-1 - window]) ** (1 / window)


@pytest.mark.parametrize(("game_cfg", "rule_cfg", "opt", "init", "steps"), [
    ({"name": "bilinear", "dim": 2, "A": "random", "A_seed": 0}, {"name": "simultaneous"},
     {"lr": 0.1}, {"dist": "normal", "scale": 1.0}, 300),
    ({"name": "bilinear"}, {"name": "simultaneous"}, {"lr": 0.1, "momentum": 0.5},
     {"dist": "normal", "scale": 1.0}, 300),
    ({"name": "bilinear"}, {"name": "alternating", "first": "gen"}, {"lr": 0.5, "momentum": -0.5},
     {"dist": "normal", "scale": 1.0}, 400),
    ({"name": "dirac", "loss": "gan"}, {"name": "simultaneous"}, {"lr": 0.2},
     {"dist": "constant", "scale": 1e-3}, 500),
    ({"name": "dirac", "loss": "wgan"}, {"name": "alternating", "disc_steps": 2},
     {"lr": 0.3, "momentum": -0.3}, {"dist": "constant", "scale": 1e-3}, 400),
])
def test_observed_growth_of_distance_matches_the_predicted_radius(game_cfg, rule_cfg, opt, init,
                                                                  steps):
    _, traj = simulate(game_cfg, rule_cfg, steps=steps, init=init, seeds=[5],
                       optimizer={"name": "sgd", **opt})
    d = series(traj, "distance")
    assert len(d) == steps + 1
    game = build(GAMES, game_cfg["name"], [{k: v for k, v in game_cfg.items() if k != "name"}])
    rule = build(RULES, rule_cfg["name"], [{k: v for k, v in rule_cfg.items() if k != "name"}])
    opts = {p: build(OPTIMIZERS, "sgd", [opt]) for p in ("gen", "disc")}
    (pred,) = stability.predict(game, rule, opts, strict=True)
    got = observed_rate(d, steps // 2)
    assert math.log(got) == pytest.approx(math.log(pred), rel=0.02)


# --- methods, layout, and where there is no prediction -----------------------------------------

def test_matrix_free_radius_agrees_with_dense_on_a_dim20_bilinear_game():
    """n = 80 (x, y, and both velocities); hand matrix [[I − ηJ, −ηβI], [J, βI]] on (z, v)."""
    game, lrs, betas = bilinear(20, "random", seed=5), [0.05, 0.1], [0.3, -0.2]
    rule, opts = build(RULES, "simultaneous", [{}]), sgd(lrs, betas)
    dense = stability.spectral_radius(game, rule, opts, method="dense")
    free = stability.spectral_radius(game, rule, opts, method="matrix_free")
    auto = stability.spectral_radius(game, rule, opts, dense_max=10)  # above the threshold
    A = game.matrix.numpy()
    J = np.block([[np.zeros((20, 20)), A], [-A.T, np.zeros((20, 20))]])
    eye = np.eye(40)
    want = [rho(np.block([[eye - e * J, -e * b * eye], [J, b * eye]])) for e, b in zip(lrs, betas)]
    np.testing.assert_allclose(dense, want, rtol=1e-10)
    np.testing.assert_allclose(free, dense, rtol=1e-8)
    np.testing.assert_allclose(auto, dense, rtol=1e-8)


def test_jvp_applies_each_runs_own_jacobian():
    lrs, betas = [0.3, 0.7], [0.2, -0.4]
    step = stability.StepMap(bilinear(), build(RULES, "alternating", [{"first": "disc"}]),
                             sgd(lrs, betas))
    v = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.3, 0.1, -1.0, 2.0]], dtype=DT)
    jv = step.jvp(v).numpy()
    for r, (e, b) in enumerate(zip(lrs, betas)):
        np.testing.assert_allclose(jv[r], alternating_disc_first_xy(e, b) @ v[r].numpy(), atol=1e-14)


def test_flatten_keeps_only_floating_run_tensors():
    R = 3
    tree = {"a": {"p": torch.ones(R, 2, dtype=DT)},
            "step": torch.zeros(R, dtype=torch.int64),
            "hist": [torch.full((R,), 2.0, dtype=DT), 0.5],
            "shared": torch.ones(4, dtype=DT)}
    vec, layout = stability.flatten_state(tree, R)
    assert vec.shape == (R, 3)
    assert layout.names() == ["a.p[0]", "a.p[1]", "hist.0"]
    back = stability.unflatten_state(vec * 5, layout)
    assert torch.equal(back["a"]["p"], 5 * torch.ones(R, 2, dtype=DT))
    assert torch.equal(back["hist"][0], torch.full((R,), 10.0, dtype=DT))
    assert back["hist"][1] == 0.5 and back["step"] is tree["step"] and back["shared"] is tree["shared"]
    assert torch.equal(stability.flatten_like(back, layout), vec * 5)


class _NoEquilibrium(Game):
    params = {}

    def shapes(self):
        return {"gen": {"x": ()}, "disc": {"y": ()}}

    def losses(self, params):
        v = params["gen"]["x"] * params["disc"]["y"]
        return {"gen": v, "disc": -v}


class _WrongEquilibrium(_NoEquilibrium):
    def equilibrium(self):
        return {"gen": {"x": torch.tensor(1.0, dtype=DT)}, "disc": {"y": torch.tensor(0.0, dtype=DT)}}


def test_no_prediction_without_equilibrium_fixed_point_or_sgd():
    rule = build(RULES, "simultaneous", [{}])
    nan_game = _NoEquilibrium.build([{}], DT)
    assert np.isnan(stability.predict(nan_game, rule, sgd([0.1, 0.2]))).all()
    assert stability.predict(nan_game, rule, sgd([0.1, 0.2])).shape == (2,)
    wrong = _WrongEquilibrium.build([{}], DT)   # ξ(1, 0) = (0, −1) ≠ 0: not a fixed point
    assert np.isnan(stability.predict(wrong, rule, sgd([0.1]))).all()
    for name in ("adam", "rmsprop"):
        opts = {p: build(OPTIMIZERS, name, [{"lr": 0.1}, {"lr": 0.2}]) for p in ("gen", "disc")}
        out = stability.predict(bilinear(), rule, opts)
        assert out.shape == (2,) and np.isnan(out).all()
    with pytest.raises(ValueError, match="no known equilibrium"):
        stability.step_jacobian(nan_game, rule, sgd([0.1]))


class _NoisyXY(_NoEquilibrium):
    """x·y scaled by a random factor c ∈ [1, 2) per run and evaluation (equilibrium still 0)."""

    def losses(self, params):
        c = 1 + self.rng.uniform(1)[:, 0].to(DT)
        v = c * params["gen"]["x"] * params["disc"]["y"]
        return {"gen": v, "disc": -v}

    def equilibrium(self):
        return self.zeros()


def test_a_stochastic_game_is_analysed_on_its_own_stream():
    """The analysis samples from a fork of ``game.rng``: the training stream is not advanced. One
    sampled step of simultaneous SGD on c·xy has ρ = √(1 + η²c²) with the sampled c."""
    from gamedyn.random import Streams

    game = _NoisyXY.build([{}], DT)
    game.rng = Streams(torch.tensor([3, 4]))
    rng, counter = game.rng, game.rng.counter
    pred = stability.predict(game, build(RULES, "simultaneous", [{}]), sgd([0.5, 0.5]), strict=True)
    assert game.rng is rng and rng.counter == counter
    c = 1 + rng.fork(stability.RNG_STREAM).uniform(1)[:, 0].numpy()  # the one draw of the step
    np.testing.assert_allclose(pred, np.sqrt(1 + 0.25 * c**2), rtol=1e-12)
    assert pred[0] != pred[1]
