"""Regularizers: each modified field against its hand-derived (or scipy-integrated) form."""

import numpy as np
import pytest
import torch
from scipy import integrate

from gamedyn import StudyError, make_study
from gamedyn.games import GAMES
from gamedyn.regularizers import REGULARIZERS
from gamedyn.rules import Context

from .conftest import series, simulate

RNG = np.random.default_rng(0)
THETA, PSI = RNG.normal(size=5) * 1.5, RNG.normal(size=5) * 1.5


def field(game_name, reg_name, game_params=None, reg_params=None, theta=THETA, psi=PSI):
    g = GAMES.get(game_name)
    game = g.build([g.resolve(game_params or {}, "g")], torch.float64)
    r = REGULARIZERS.get(reg_name)
    reg = r.build([r.resolve(reg_params or {}, "r")] * len(theta), torch.float64)
    if game_name == "dirac":
        params = {"gen": {"theta": torch.tensor(theta)}, "disc": {"psi": torch.tensor(psi)}}
    else:
        params = theta
    grads = Context(game, {}, regularizer=reg).grad(params)
    return grads


def fp(t):   # f'(t) for f(t) = −log(1 + e^{−t})
    return 1 / (1 + np.exp(t))


def fpp(t):
    s = 1 / (1 + np.exp(t))
    return -s * (1 - s)


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_zero_centred_penalties_add_gamma_psi_to_the_discriminator(name):
    g = field("dirac", name, {"loss": "gan"}, {"gamma": 0.7})
    np.testing.assert_allclose(g["disc"]["psi"].numpy(), -THETA * fp(PSI * THETA) + 0.7 * PSI, rtol=1e-12)
    np.testing.assert_allclose(g["gen"]["theta"].numpy(), PSI * fp(PSI * THETA), rtol=1e-12)


def test_instance_noise_field_is_the_expected_field():
    sigma = 0.8
    g = field("dirac", "instance_noise", {"loss": "gan"}, {"sigma": sigma, "nodes": 40})
    def expect(h):
        return integrate.quad(lambda e: h(e) * np.exp(-e * e / 2) / np.sqrt(2 * np.pi), -12, 12,
                              epsabs=1e-13)[0]

    for i, (th, ps) in enumerate(zip(THETA, PSI)):
        # L = E f(ψ(θ+σε)) + E f(−ψσε)
        d_theta = expect(lambda e, th=th, ps=ps: ps * fp(ps * (th + sigma * e)))
        d_psi = expect(lambda e, th=th, ps=ps: (th + sigma * e) * fp(ps * (th + sigma * e))) \
            + expect(lambda e, ps=ps: -sigma * e * fp(-ps * sigma * e))
        assert g["gen"]["theta"][i].item() == pytest.approx(d_theta, rel=1e-9, abs=1e-12)
        assert g["disc"]["psi"][i].item() == pytest.approx(-d_psi, rel=1e-9, abs=1e-12)


def test_wgan_gp_on_dirac_is_lambda_abs_psi_minus_target_squared():
    g = field("dirac", "wgan_gp", {"loss": "wgan"}, {"lam": 2.0, "target": 1.0})
    expected = -THETA + 2.0 * 2 * (np.abs(PSI) - 1) * np.sign(PSI)
    np.testing.assert_allclose(g["disc"]["psi"].numpy(), expected, rtol=1e-9)


def test_gradient_norm_regularizer_on_dirac():
    eta = 0.5
    g = field("dirac", "gradient_norm", {"loss": "gan"}, {"eta": eta})
    t = PSI * THETA
    # gen loss gains η (θ f′(ψθ))²; its θ-derivative is η (2θ f′² + 2θ² f′ f″ ψ)
    extra = eta * (2 * THETA * fp(t) ** 2 + 2 * THETA**2 * fp(t) * fpp(t) * PSI)
    np.testing.assert_allclose(g["gen"]["theta"].numpy(), PSI * fp(t) + extra, rtol=1e-10)
    np.testing.assert_allclose(g["disc"]["psi"].numpy(), -THETA * fp(t), rtol=1e-12)


def test_gradient_norm_regularizer_on_bilinear_adds_2_eta_AAT_x():
    cls = GAMES.get("bilinear")
    game = cls.build([cls.resolve({"dim": 2, "A": "random", "A_seed": 1}, "g")], torch.float64)
    A = game.matrix.numpy()
    r = REGULARIZERS.get("gradient_norm")
    reg = r.build([{"eta": 0.3}] * 3, torch.float64)
    x, y = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2))
    params = {"gen": {"x": torch.tensor(x)}, "disc": {"y": torch.tensor(y)}}
    g = Context(game, {}, regularizer=reg).grad(params)
    np.testing.assert_allclose(g["gen"]["x"].numpy(), y @ A.T + 2 * 0.3 * x @ A @ A.T, rtol=1e-12)


def test_clip_bounds_the_discriminator_after_each_move():
    _, traj = simulate({"name": "dirac", "loss": "wgan"}, "simultaneous", lr=0.5, steps=3,
                       init={"gen": {"theta": 2.0}, "disc": {"psi": 0.0}},
                       regularizer={"name": "clip", "c": 0.3})
    psi, theta = series(traj, "disc.psi"), series(traj, "gen.theta")
    # step 1: ψ = 0 + 0.5·θ = 1.0 → clipped to 0.3, θ = 2 − 0.5·0 = 2
    assert psi[1] == pytest.approx(0.3) and theta[1] == pytest.approx(2.0)
    assert np.all(np.abs(psi) <= 0.3 + 1e-15)


def test_regularizer_columns_and_grid():
    study = make_study({"name": "s", "game": "dirac", "rules": ["simultaneous"], "steps": 5,
                        "optimizer": {"lr": 0.1},
                        "regularizer": ["none", {"name": "r1", "gamma": [0.1, 1.0]}]})
    cols = [r.columns for r in study.runs]
    assert [c["regularizer"] for c in cols] == ["none", "r1", "r1"]
    assert [c.get("regularizer.gamma") for c in cols] == [None, 0.1, 1.0]
    assert cols[2]["regularizer_label"] == "r1"  # γ = 1 is the default
    assert len(study.batches()) == 1            # γ varies within a batch, and on the Dirac-GAN
    #                                             none and r1 share it (closed-form penalties)


def test_sample_regularizer_on_a_game_without_samples_is_refused():
    with pytest.raises(StudyError) as e:
        make_study({"name": "s", "game": "bilinear", "rules": ["simultaneous"], "steps": 5,
                    "optimizer": {"lr": 0.1}, "regularizer": {"name": "r1"}})
    assert e.value.key == "regularizer" and "dirac" in str(e.value)
