"""A study's ``spectra:`` key: the game Jacobian's spectrum and split at each run's final state, as
runs-table columns (:func:`gamedyn.spectra.run_columns`), against closed forms, an independent
computation on saved final weights, and the training run without the key."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import StudyError, make_study, spectra
from gamedyn.batch import run_batch
from gamedyn.games import GAMES
from gamedyn.modules import decode_players
from gamedyn.random import Streams
from gamedyn.record import _coord_names

pytestmark = pytest.mark.usefixtures("one_thread")

#: A user's tiny players, as plain modules (gamedyn/modules.py): 2 → 24 → 2 and 2 → 128 → 1, so
#: 122 + 513 = 635 parameters per run, above DENSE_MAX (Arnoldi), too many to be recorded.
NETS = """from torch import nn


class G(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 24), nn.Tanh(), nn.Linear(24, 2))

    def forward(self, z):
        return self.net(z)


class D(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 128), nn.Tanh(), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x)
"""


def tiny_gan(folder):
    """module_gan with :data:`NETS` on 64 points of a ring (a data file without labels, so no
    classifier is trained)."""
    (folder / "nets.py").write_text(NETS)
    angle = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    np.savez(folder / "ring.npz", x=np.stack([np.cos(angle), np.sin(angle)], 1))
    return {"name": "module_gan", "generator": {"module": str(folder / "nets.py"), "class": "G"},
            "discriminator": {"module": str(folder / "nets.py"), "class": "D"},
            "data": {"file": str(folder / "ring.npz")}, "latent": {"dim": 2}, "batch": 8,
            "eval_samples": 16}


#: mog_ring, tiny: 10 + 13 parameters per run, every one recorded; a stochastic game (minibatches).
TINY_RING = {"name": "mog_ring", "latent": 1, "gen_hidden": 2, "gen_layers": 1, "disc_hidden": 3,
             "disc_layers": 1, "batch": 16, "eval_samples": 32, "distance_samples": 32}
NEW = list(spectra.COLUMNS)
NEW_MAP = NEW + list(spectra.MAP_COLUMNS)


def study(game, rule="simultaneous", lr=0.1, init=None, **extra):
    return make_study({"name": "t", "game": game, "rules": [rule],
                       "optimizer": {"name": "sgd", "lr": lr},
                       "init": init or {"dist": "constant", "scale": 1.0}, **extra})


def run(s):
    out = [run_batch(b, s.thresholds, compile="off") for b in s.batches()]
    return (pd.concat([r.runs for r in out], ignore_index=True),
            pd.concat([r.trajectories for r in out], ignore_index=True))


def final(traj, run_id, coords):
    """Run ``run_id``'s recorded ``coords`` at its last record (the last step)."""
    t = traj[traj["run_id"].astype(str) == run_id]
    t = t[t["step"] == t["step"].max()]
    values = dict(zip(t["variable"].astype(str), t["value"]))
    return np.array([values[c] for c in coords], dtype=float)


def pairs(text):
    return np.array([complex(re, im) for re, im in json.loads(text)])


def test_bilinear_columns_are_the_closed_forms_at_the_final_point():
    """xᵀAy: H = [[0, A], [−Aᵀ, 0]] everywhere, S = 0, λ = ±iσ(A), ‖A‖_F(H) = √2‖A‖_F, and along the
    field ξ = Hz: ⟨ξ, Sξ⟩ = ‖Sξ‖ = 0, ‖Aξ‖ = ‖H²z‖ at the final point z_T = (I − ηH)ᵀ z₀ of
    simultaneous SGD; the update map's eigenvalues 1 ∓ iησ (and 0 for SGD's slaved velocity)."""
    game = {"name": "bilinear", "dim": 2, "A": "random", "A_seed": 3}
    lrs, T = [0.1, 0.3], 30
    s = study(game, lr=lrs, steps=T, record_every=10, spectra={"update_map": True})
    runs, traj = run(s)
    A = GAMES.get("bilinear").build([s.runs[0].config["game"]], torch.float64).matrix.numpy()
    sigma = np.linalg.svd(A, compute_uv=False)
    H = np.block([[np.zeros((2, 2)), A], [-A.T, np.zeros((2, 2))]])
    for i, lr in enumerate(lrs):
        z = np.linalg.matrix_power(np.eye(4) - lr * H, T) @ np.ones(4)
        np.testing.assert_allclose(final(traj, runs["run_id"][i], ["gen.x[0]", "gen.x[1]",
                                                                  "disc.y[0]", "disc.y[1]"]),
                                   z, rtol=1e-12)
        row = runs.iloc[i]
        lam = pairs(row["eig"])
        np.testing.assert_allclose(lam.real, 0, atol=1e-12)
        np.testing.assert_allclose(np.sort(lam.imag), np.sort(np.r_[sigma, -sigma]), rtol=1e-12)
        assert row["eig_im_max"] == pytest.approx(sigma.max(), rel=1e-12)
        assert abs(row["eig_re_max"]) < 1e-12 and row["rotation_index"] > 1e10
        assert row["S_norm"] == pytest.approx(0, abs=1e-14) and row["A_share"] == pytest.approx(1)
        assert row["A_norm"] == pytest.approx(math.sqrt(2) * np.linalg.norm(A), rel=1e-12)
        assert row["xi_S_xi"] == pytest.approx(0, abs=1e-12)
        assert row["S_xi_norm"] == pytest.approx(0, abs=1e-12)
        assert row["A_xi_norm"] == pytest.approx(np.linalg.norm(H @ H @ z), rel=1e-12)
        assert np.isnan(row["eig_residual"])   # dense: exact
        assert row["map_radius"] == pytest.approx(math.hypot(1, lr * sigma.max()), rel=1e-12)
        mu = pairs(row["map_eig"])
        assert len(mu) == spectra.TOP_K     # of the 8 state coordinates, the top k by modulus
        np.testing.assert_allclose(mu[:4].real, 1, rtol=1e-12)
        np.testing.assert_allclose(np.sort(mu[:4].imag), np.sort(np.r_[lr * sigma, -lr * sigma]),
                                   rtol=1e-12)
        np.testing.assert_allclose(mu[4:], 0, atol=1e-12)


def test_double_well_is_a_potential_game_with_no_rotation():
    """φ = (x² − 1)²/4 + (y² − 1)²/4: H = diag(3x² − 1, 3y² − 1) symmetric, A = 0: A_share = 0,
    a real spectrum (rotation index 0), ⟨ξ, Sξ⟩ = Σ dᵢξᵢ² with ξ = (x³ − x, y³ − y)."""
    runs, traj = run(study("double_well", lr=0.05, steps=12, record_every=4,
                           init={"gen": {"x": 0.4}, "disc": {"y": -1.6}},
                           spectra={"update_map": True}))
    row = runs.iloc[0]
    z = final(traj, row["run_id"], ["gen.x", "disc.y"])
    d, xi = 3 * z ** 2 - 1, z ** 3 - z
    assert 0.4 < z[0] < 0.99 and -1.6 < z[1] < -1.01   # not at the minimum yet: a real test
    assert row["A_share"] == 0 and row["A_norm"] == 0 and row["A_xi_norm"] == 0
    assert row["rotation_index"] == 0 and row["eig_im_max"] == 0
    np.testing.assert_allclose(pairs(row["eig"]), np.sort(d)[::-1], rtol=1e-12)
    assert row["S_norm"] == pytest.approx(np.linalg.norm(d), rel=1e-12)
    assert row["xi_S_xi"] == pytest.approx((d * xi ** 2).sum(), rel=1e-12)
    assert row["S_xi_norm"] == pytest.approx(np.linalg.norm(d * xi), rel=1e-12)
    assert row["map_radius"] == pytest.approx(np.abs(1 - 0.05 * d).max(), rel=1e-12)


def test_neural_players_get_the_arnoldi_spectrum_of_their_saved_final_weights(tmp_path):
    """module_gan (635 parameters per run, unrecorded): the columns are spectra.at(k=TOP_K) of the
    final weights saved in the runs table (``players``), computed here on a game built apart, with
    the runs' seeds (the analysis stream's minibatches); the training is the same without the key."""
    gan = tiny_gan(tmp_path)
    s = study(gan, lr=0.05, init={"dist": "normal", "scale": 1.0}, steps=4, record_every=2,
              seeds=2, dtype="float64", spectra="on")
    runs, traj = run(s)
    cls = GAMES.get("module_gan")
    game = cls.build([r.config["game"] for r in s.runs], torch.float64)
    game.rng = Streams(torch.tensor([r.config["seed"] for r in s.runs]))
    mods = [decode_players(text) for text in runs["players"]]
    params = {p: {n: torch.stack([m[p].get_parameter(n).detach() for m in mods])
                  for n in shape} for p, shape in game.shapes().items()}
    assert sum(v[0].numel() for named in params.values() for v in named.values()) > \
        spectra.DENSE_MAX
    want = spectra.at(game, params, k=spectra.TOP_K)
    for i in range(2):
        row = runs.iloc[i]
        lam = pairs(row["eig"])
        assert len(lam) == spectra.TOP_K and row["eig_residual"] < 1e-8
        np.testing.assert_allclose(lam, want["eig"][i].numpy(), rtol=1e-8, atol=1e-10)
        for c, k in [("eig_re_max", "re_max"), ("eig_im_max", "im_max"),
                     ("xi_S_xi", "xi_S_xi"), ("S_xi_norm", "S_xi_norm"),
                     ("A_xi_norm", "A_xi_norm")]:
            assert row[c] == pytest.approx(want[k][i], rel=1e-8, abs=1e-12), c
        assert np.isnan(row["A_share"])   # matrix-free: no Frobenius norms
    off, traj_off = run(study(gan, lr=0.05, init={"dist": "normal", "scale": 1.0}, steps=4,
                              record_every=2, seeds=2, dtype="float64"))
    assert not set(NEW) & set(off.columns)
    assert list(off["players"]) == list(runs["players"])
    pd.testing.assert_frame_equal(traj.drop(columns="run_id"), traj_off.drop(columns="run_id"),
                                  check_exact=True)


def test_top_k_are_the_largest_of_the_dense_spectrum_at_the_recorded_end():
    """mog_ring with every parameter recorded: ``k: 4`` (Arnoldi) gives the four eigenvalues of
    largest modulus of the dense spectrum at the final parameters read back from the trajectories."""
    s = study(TINY_RING, lr=0.05, init={"dist": "normal", "scale": 1.0}, steps=20,
              record_every=5, seeds=2, spectra={"k": 4})
    runs, traj = run(s)
    game = GAMES.get("mog_ring").build([r.config["game"] for r in s.runs], torch.float64)
    game.rng = Streams(torch.tensor([r.config["seed"] for r in s.runs]))
    params = {}
    for p, named in game.shapes().items():
        params[p] = {}
        for n, shape in named.items():
            flat = np.stack([final(traj, rid, _coord_names(p, n, shape)) for rid in runs["run_id"]])
            params[p][n] = torch.tensor(flat).reshape(2, *shape)
    dense = spectra.at(game, params)["eig"].numpy()
    for i in range(2):
        got = pairs(runs["eig"][i])
        top = dense[i][np.argsort(-np.abs(dense[i]), kind="stable")[:4]]
        assert len(got) == 4
        np.testing.assert_allclose(np.sort(np.abs(got)), np.sort(np.abs(top)), rtol=1e-9)
        np.testing.assert_allclose(np.sort_complex(got.real + 1j * np.abs(got.imag)),
                                   np.sort_complex(top.real + 1j * np.abs(top.imag)), rtol=1e-9,
                                   atol=1e-12)


def test_the_key_is_validated_in_one_line_and_off_changes_nothing():
    base = {"name": "t", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 5}
    for bad, where in [("maybe", r"^spectra: 'maybe' is not accepted: expected 'off'"),
                       ({"k": 0}, r"^spectra\.k: 0 is not accepted: expected an integer >= 1"),
                       ({"k": True}, r"^spectra\.k: True is not accepted"),
                       ({"kk": 3}, r"^spectra\.kk: unknown key \(did you mean 'k'\?\); "
                                   r"accepted: k, update_map$"),
                       ({"update_map": "yes"}, r"^spectra\.update_map: 'yes' is not accepted"),
                       (None, r"^spectra: None is not accepted")]:
        with pytest.raises(StudyError, match=where) as e:
            make_study({**base, "spectra": bad})
        assert "\n" not in str(e.value)
    plain = make_study(base)
    for off in ("off", False):   # YAML reads a bare off as False
        assert make_study({**base, "spectra": off}).runs[0].run_id == plain.runs[0].run_id
        assert "spectra" not in make_study({**base, "spectra": off}).runs[0].config
    for on in ("on", True, {}):
        assert make_study({**base, "spectra": on}).runs[0].config["spectra"] == spectra.DEFAULTS
    assert make_study({**base, "spectra": {"k": 3}}).runs[0].config["spectra"] == \
        {"k": 3, "update_map": False}
    runs, _ = run(plain)
    assert not set(NEW_MAP) & set(runs.columns)
    runs, _ = run(make_study({**base, "spectra": "on"}))
    assert set(NEW) <= set(runs.columns) and not set(spectra.MAP_COLUMNS) & set(runs.columns)


@pytest.mark.invariance
def test_a_run_alone_equals_it_in_a_batch():
    """Dense (Dirac-GAN, with the update map) and Arnoldi (tiny mog_ring, k = 3): every new column
    of a run alone equals the run's in its batch, bit for bit."""
    for spec, cols in [
        (study("dirac", rule={"name": "alternating", "first": "gen"}, lr=[0.1, 0.3, 0.7],
               init={"dist": "normal", "scale": 1.0}, seeds=2, steps=40, record_every=5,
               spectra={"update_map": True}), NEW_MAP),
        (study(TINY_RING, lr=[0.02, 0.05], init={"dist": "normal", "scale": 1.0}, seeds=2,
               steps=10, record_every=5, spectra={"k": 3}), NEW),
    ]:
        (batch,) = spec.batches()
        together = run_batch(batch, spec.thresholds, compile="off").runs.set_index("run_id")
        assert together[cols[:-1]].notna().any().any()
        for one in batch[1::2]:
            alone = run_batch([one], spec.thresholds, compile="off").runs.set_index("run_id")
            pd.testing.assert_frame_equal(alone[cols], together.loc[[one.run_id], cols],
                                          check_exact=True)


def test_training_is_the_same_bit_for_bit_with_and_without_the_key():
    """A stochastic game (mog_ring's minibatches) with the update map and the Lyapunov exponents:
    the trajectories and every other column are those of the study without ``spectra:``."""
    kw = {"lr": [0.02, 0.05], "init": {"dist": "normal", "scale": 1.0}, "seeds": 2, "steps": 20,
          "record_every": 5}
    on_runs, on_traj = run(study(TINY_RING, spectra={"update_map": True, "k": 4}, **kw))
    off_runs, off_traj = run(study(TINY_RING, **kw))
    assert on_runs["map_radius"].notna().all() and on_runs["lyapunov_1"].notna().all()
    pd.testing.assert_frame_equal(on_traj.drop(columns="run_id"), off_traj.drop(columns="run_id"),
                                  check_exact=True)
    same = [c for c in off_runs.columns if c not in ("run_id", "batch_id", "wall_time",
                                                     "compile_time")]
    pd.testing.assert_frame_equal(on_runs[same], off_runs[same], check_exact=True)


def test_a_non_finite_end_gets_nan_columns_and_its_batch_mate_its_own():
    """A run whose state overflows gets NaN (None for the JSON) without a warning; the finite run
    beside it gets what it gets alone."""
    s = study("bilinear", lr=[0.1, 1e100], steps=20, record_every=5, spectra={"update_map": True})
    (batch,) = s.batches()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_batch(batch, s.thresholds, compile="off").runs
    assert not [w for w in caught if "spectra" in str(w.message)]
    assert rows["stop_reason"][1] == "nonfinite"
    bad = rows.iloc[1]
    assert all(np.isnan(bad[c]) for c in NEW_MAP if not c.endswith("eig"))
    assert pd.isna(bad["eig"]) and pd.isna(bad["map_eig"])
    alone = run_batch(batch[:1], s.thresholds, compile="off").runs
    pd.testing.assert_frame_equal(alone[NEW_MAP], rows.iloc[:1][NEW_MAP], check_exact=True)
