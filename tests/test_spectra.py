"""Spectra, the potential/Hamiltonian split and the path-angle against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gamedyn import make_study, spectra
from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.orchestrate import run_study
from gamedyn.rules import RULES

from .conftest import build

DT = torch.float64


def params_of(x, y):
    return {"gen": {"x": torch.tensor(x, dtype=DT)}, "disc": {"y": torch.tensor(y, dtype=DT)}}


def test_potential_game_has_no_hamiltonian_part():
    """double_well: H = diag(3x² − 1, 3y² − 1), symmetric: A = 0, eigenvalues the diagonal."""
    game = build(GAMES, "double_well", [{}] * 3)
    x, y = [0.3, -1.2, 2.0], [0.7, 0.1, -0.5]
    res = spectra.at(game, params_of(x, y))
    np.testing.assert_allclose(res["A_norm"], 0, atol=1e-14)
    np.testing.assert_allclose(res["A_xi_norm"], 0, atol=1e-14)
    d = np.stack([3 * np.square(x) - 1, 3 * np.square(y) - 1], 1)
    np.testing.assert_allclose(np.sort(res["eig"].real.numpy(), 1), np.sort(d, 1), atol=1e-12)
    np.testing.assert_allclose(res["eig"].imag.numpy(), 0, atol=1e-14)
    np.testing.assert_allclose(res["S_norm"], np.linalg.norm(d, axis=1), atol=1e-12)
    xi = np.stack([np.power(x, 3) - x, np.power(y, 3) - y], 1)
    np.testing.assert_allclose(res["xi_S_xi"], (xi * d * xi).sum(1), atol=1e-12)
    np.testing.assert_allclose(res["rotation_index"], 0)


def bilinear_with_sgd(dim: int, A_seed: int, lr: list[float]):
    """xᵀAy (random A) under simultaneous SGD, one run per learning rate, at random points: the
    game, the rule, the optimizers and the parameters."""
    R = len(lr)
    game = build(GAMES, "bilinear", [{"dim": dim, "A": "random", "A_seed": A_seed}] * R)
    rule = build(RULES, "simultaneous", [{}] * R)
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": v} for v in lr]) for p in ("gen", "disc")}
    g = torch.Generator().manual_seed(0)
    params = {"gen": {"x": torch.randn(R, dim, generator=g, dtype=DT)},
              "disc": {"y": torch.randn(R, dim, generator=g, dtype=DT)}}
    return game, rule, opts, params


def test_bilinear_game_is_hamiltonian_with_eigenvalues_i_sigma():
    """xᵀAy: H = [[0, A], [−Aᵀ, 0]], S = 0, eigenvalues ±iσ(A); simultaneous SGD's update map
    I − ηH has eigenvalues 1 ∓ iησ."""
    lr = [0.1, 0.3]
    game, rule, opts, params = bilinear_with_sgd(2, 3, lr)
    A = game.matrix.numpy()
    sigma = np.sort(np.linalg.svd(A, compute_uv=False))
    res = spectra.at(game, params, rule=rule, optimizers=opts)
    np.testing.assert_allclose(res["S_norm"], 0, atol=1e-14)
    np.testing.assert_allclose(res["xi_S_xi"], 0, atol=1e-14)
    np.testing.assert_allclose(res["A_share"], 1.0)
    np.testing.assert_allclose(res["A_norm"], np.sqrt(2) * np.linalg.norm(A), rtol=1e-12)
    lam = res["eig"].numpy()
    np.testing.assert_allclose(lam.real, 0, atol=1e-12)
    np.testing.assert_allclose(np.sort(np.abs(lam.imag), 1),
                               np.tile(np.repeat(sigma, 2), (2, 1)), rtol=1e-10)
    assert np.isinf(res["rotation_index"]).all()
    np.testing.assert_allclose(res["im_max"], sigma.max(), rtol=1e-12)
    mu = res["map_eig"].numpy()      # the state holds SGD's velocity too: slaved, eigenvalue 0
    assert mu.shape == (2, 8)
    for r, eta in enumerate(lr):
        live = mu[r][np.abs(mu[r]) > 1e-9]
        np.testing.assert_allclose(live.real, 1.0, atol=1e-12)
        np.testing.assert_allclose(np.sort(np.abs(live.imag)), np.repeat(eta * sigma, 2),
                                   rtol=1e-10)
        np.testing.assert_allclose(res["map_radius"][r], np.sqrt(1 + (eta * sigma.max()) ** 2))


def test_rotation_index_of_a_damped_rotation():
    """Dirac-GAN-like H = [[a, −b], [b, a]]: eigenvalues a ± ib, rotation index b/a; the
    decomposition gives ‖S‖ = √2 a, ‖A‖ = √2 b."""
    a, b = 0.2, 1.5
    H = torch.tensor([[[a, -b], [b, a]]], dtype=DT)
    lam = spectra.eigenvalues(H)
    np.testing.assert_allclose(lam.numpy()[0], [a + 1j * b, a - 1j * b])
    s = spectra.summary(lam)
    assert s["rotation_index"][0] == pytest.approx(b / a)
    d = spectra.decomposition(H, torch.tensor([[1.0, 0.0]], dtype=DT))
    assert d["S_norm"][0] == pytest.approx(np.sqrt(2) * a)
    assert d["A_norm"][0] == pytest.approx(np.sqrt(2) * b)
    assert d["A_xi_norm"][0] == pytest.approx(b)


def test_path_angle_on_xy_is_zero_along_lines_through_the_equilibrium():
    """On x·y the field at c·u is c·Hu with H antisymmetric, so ⟨v, u⟩ = 0 on any line through 0;
    ‖v‖² = ‖θ_α‖² (H is a rotation by 90°)."""
    game = build(GAMES, "bilinear", [{}] * 3)
    u = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 2.0]])
    s, t = np.array([-1.5, 0.5, 2.0]), np.array([1.0, 3.0, -0.5])
    p1, p2 = s[:, None] * u, t[:, None] * u
    res = spectra.path_angle(game, params_of(p1[:, :1], p1[:, 1:]), params_of(p2[:, :1], p2[:, 1:]))
    assert res["cosine"].shape == (3, len(spectra.ALPHAS))
    c = (1 - res["alpha"])[None] * s[:, None] + res["alpha"][None] * t[:, None]
    ok = np.abs(c) > 1e-9
    np.testing.assert_allclose(res["cosine"][ok], 0, atol=1e-12)
    np.testing.assert_allclose(res["norm2"], c ** 2 * (u ** 2).sum(1)[:, None], atol=1e-12)


def test_along_reads_the_recorded_trajectory(tmp_path):
    """The side table at recorded steps equals spectra.at on the recorded parameters; on
    double_well the game Jacobian is diag(3x² − 1, 3y² − 1) at the recorded point."""
    study = make_study({"name": "sp", "game": "double_well", "rules": ["simultaneous"],
                        "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 20, "record_every": 10,
                        "init": {"grid": {"gen.x": [-1.5, 1.5, 3], "disc.y": [0.2, 0.4, 2]}},
                        "lyapunov": "off", "figures": []})
    res = run_study(study, out=tmp_path, progress=False, compile="off")
    table = spectra.along(res)
    assert len(table) == 6 * 3 and list(table["step"][:3]) == [0, 10, 20]
    w = res.wide(["gen.x", "disc.y"])
    merged = table.merge(w[["run_id", "step", "gen.x", "disc.y"]], on=["run_id", "step"])
    d = np.stack([3 * merged["gen.x"] ** 2 - 1, 3 * merged["disc.y"] ** 2 - 1], 1)
    np.testing.assert_allclose(merged["re_max"], d.max(1), atol=1e-12)
    np.testing.assert_allclose(merged["A_norm"], 0, atol=1e-14)
    # the update map of SGD on a potential game: I − ηH, eigenvalues 1 − η·diag
    np.testing.assert_allclose(merged["map_radius"], np.abs(1 - 0.1 * d).max(1), atol=1e-12)


def test_the_path_angle_of_networks_runs_from_their_initial_to_their_final_weights(tmp_path):
    """module_gan records its players' tensor norms only: the path-angle's ends are the initial
    weights, rebuilt from each run's seed, and the final weights it keeps. Their norms are the
    recorded ``norm.*`` at the first and the last step; the figure draws."""
    from gamedyn.figures.spectra import _checkpoints
    from gamedyn.results import load

    from .test_module_gan import spec

    study = make_study({**spec(), "seeds": 2, "dtype": "float64", "figures": ["path_angle"]})
    res = run_study(study, out=tmp_path, progress=False)
    game, *_ = spectra._components([r.config for r in study.runs], study.runs[0].plugins)
    start, end = _checkpoints(res, game, study.runs)
    t = res.trajectories
    for pick, point in ((0, start), (study.runs[0].config["steps"], end)):
        at = t[t["step"] == pick]
        for p, named in point.items():
            for n, v in named.items():
                got = v.flatten(1).norm(dim=1).numpy()
                want = at[at["variable"] == f"norm.{p}.{n}"].set_index("run_id")["value"]
                np.testing.assert_allclose(got, want.reindex([r.run_id for r in study.runs]),
                                           rtol=1e-12)
    from gamedyn.figures import FIGURES

    assert FIGURES.get("path_angle")(load(res.path), tmp_path / "pa.png").exists()
