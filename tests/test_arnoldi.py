"""Batched Arnoldi (gamedyn.arnoldi) and the matrix-free top-k spectra (gamedyn.spectra) against
independent computations: numpy's eigenvalues of dense matrices of known spectra, the dense game
Jacobian of a small neural game, and ARPACK on the same operator; a run alone equals the run in a
batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import LinearOperator
from scipy.sparse.linalg import eigs as arpack_eigs

from gamedyn import arnoldi, spectra, stability
from gamedyn.games import GAMES
from gamedyn.random import Streams

from .conftest import build
from .test_spectra import bilinear_with_sgd

pytestmark = pytest.mark.usefixtures("one_thread")

DT = torch.float64
#: A small mog_ring: 163 parameters per run (gen 4 → 8 → 8 → 2, disc 2 → 8 → 1).
MOG = {"latent": 4, "gen_hidden": 8, "disc_hidden": 8, "batch": 32, "eval_samples": 20}


def matvec_of(A: torch.Tensor):
    return lambda V: (A @ V[..., None])[..., 0]


def top_by_modulus(lam: np.ndarray, k: int) -> np.ndarray:
    """numpy eigenvalues [R, n] → the k of largest modulus per run, as arnoldi.eigs sorts them."""
    order = np.lexsort((-lam.imag, -lam.real, -np.abs(lam)), axis=-1)
    return np.take_along_axis(lam, order, -1)[:, :k]


def matched_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per run, max |a_i − b_π(i)| / |b_i| over the best matching π of two sets of eigenvalues
    (the order within a near-tie of moduli is rounding's choice)."""
    out = []
    for x, y in zip(a, b):
        d = np.abs(x[:, None] - y[None, :])
        i, j = linear_sum_assignment(d)
        out.append((d[i, j] / np.abs(y[j])).max())
    return np.array(out)


def known_spectrum(rng: np.random.Generator, n: int, top: list[complex]) -> np.ndarray:
    """Q D Q⁻¹ with D real block diagonal: ``top`` (complex values give a 2 × 2 rotation block for
    the pair) followed by small real eigenvalues of modulus < 1."""
    D = np.zeros((n, n))
    i = 0
    for lam in top:
        if lam.imag:
            D[i:i + 2, i:i + 2] = [[lam.real, lam.imag], [-lam.imag, lam.real]]
            i += 2
        else:
            D[i, i] = lam.real
            i += 1
    D[range(i, n), range(i, n)] = rng.uniform(-0.9, 0.9, n - i)
    Q = rng.standard_normal((n, n))
    return Q @ D @ np.linalg.inv(Q)


def mog(seeds: list[int]):
    game = build(GAMES, "mog_ring", [MOG] * len(seeds))
    game.rng = Streams(torch.tensor(seeds))
    return game, game.init_params(seeds)


@pytest.fixture(scope="module")
def mog_dense():
    """Three runs of the small mog_ring, their dense game Jacobians and numpy's eigenvalues (on
    one thread: this module-scoped fixture is set up before ``one_thread`` applies)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        game, params = mog([0, 1, 2])
        H = stability.field_jacobian(game, params=params)
        return game, params, H, np.linalg.eigvals(H.numpy())
    finally:
        torch.set_num_threads(before)


# --- dense matrices of known spectra ---------------------------------------------------------

def test_top_k_of_dense_matrices_with_known_spectra_incl_complex_pairs():
    rng = np.random.default_rng(7)
    tops = [[5, 4 + 2j, -3.7, 3 + 1.2j, 2.5], [6 + 1j, -5, 4.5, 3 + 3j, -2.8],
            [-4, 3.9 + 0.5j, 3.5, -3.2, 2 + 2j]]
    A = np.stack([known_spectrum(rng, 60, top) for top in tops])
    res = arnoldi.eigs(matvec_of(torch.tensor(A)), 3, 60, k=6, krylov=16)
    assert res.restarts > 0 and res.converged.all()
    assert res.values.shape == (3, 6) and res.values.dtype == torch.complex128
    expected = top_by_modulus(np.linalg.eigvals(A), 6)
    np.testing.assert_allclose(res.values.numpy(), expected, rtol=1e-10)
    for top, got in zip(tops, res.values.numpy()):       # the constructed values themselves
        want = top_by_modulus(np.array([[v for t in top for v in ((t, np.conj(t)) if
                                                                  complex(t).imag else (t,))]]), 6)
        np.testing.assert_allclose(got, want[0], rtol=1e-9)
    assert (res.residuals <= 1e-11).all()
    lam = res.values.numpy()                             # a conjugate pair is adjacent, +Im first
    np.testing.assert_array_equal(lam[0, 1], np.conj(lam[0, 2]))
    assert lam[0, 1].imag > 0


def test_invariant_subspaces_repeated_eigenvalues_and_a_zero_operator():
    """diag with repeated eigenvalues: the Krylov space of one vector breaks down after as many
    steps as there are distinct values; the iteration goes on from fresh vectors and finds the
    multiplicities. The zero operator breaks down at once, with eigenvalues 0."""
    d = torch.tensor([3.0] * 7 + [-2.0] * 5 + [1.0] * 38, dtype=DT)
    A = torch.stack([torch.diag(d), torch.zeros(50, 50, dtype=DT)])
    res = arnoldi.eigs(matvec_of(A), 2, 50, k=9, krylov=20)
    assert res.converged.all()
    np.testing.assert_allclose(res.values[0].numpy(), [3.0] * 7 + [-2.0] * 2, atol=1e-12)
    np.testing.assert_array_equal(res.values[1].numpy(), np.zeros(9))


def test_krylov_dimension_reaching_n_is_one_exact_pass_and_bad_runs_are_nan():
    rng = np.random.default_rng(3)
    A = torch.tensor(rng.standard_normal((3, 5, 5)))
    A[1, 2, 3] = np.nan
    res = arnoldi.eigs(matvec_of(A), 3, 5, k=5)
    assert res.restarts == 0 and res.matvecs == 5
    assert res.converged.tolist() == [True, False, True]
    assert torch.isnan(res.values[1]).all()
    expected = top_by_modulus(np.linalg.eigvals(A.numpy()[[0, 2]]), 5)
    np.testing.assert_allclose(res.values.numpy()[[0, 2]], expected, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError):
        arnoldi.eigs(matvec_of(A), 3, 5, k=6)


@pytest.mark.invariance
def test_a_run_alone_equals_the_run_in_a_batch():
    """Same bits where the products do (each run's matvec on its own), and to rounding when they
    come from one batched matrix product."""
    rng = np.random.default_rng(11)
    A = torch.tensor(np.stack([known_spectrum(rng, 40, [4, 3 + 1j, -2.5]) for _ in range(4)]))
    per_run = lambda V: torch.stack([A[r] @ V[r] for r in range(len(V))])  # noqa: E731
    batch = arnoldi.eigs(per_run, 4, 40, k=4, krylov=12)
    alone = arnoldi.eigs(lambda V: (A[2] @ V[0])[None], 1, 40, k=4, krylov=12)
    assert torch.equal(batch.values[2], alone.values[0])
    batched = arnoldi.eigs(matvec_of(A), 4, 40, k=4, krylov=12)
    np.testing.assert_allclose(batched.values[2].numpy(), alone.values[0].numpy(), rtol=1e-12)


# --- the game Jacobian of a neural game -------------------------------------------------------

def test_top_k_of_a_neural_game_jacobian_equal_the_dense_ones(mog_dense):
    game, params, H, lam = mog_dense
    assert H.shape == (3, 163, 163)
    res = spectra.top_eigenvalues(game, params, k=6, krylov=24)
    assert res.restarts > 0 and res.converged.all()
    want = top_by_modulus(lam, 7)
    gap = np.abs(want[:, 5]) - np.abs(want[:, 6])          # the top 6 are a well-defined set
    assert (gap > 1e-6 * np.abs(want[:, 0])).all()
    assert matched_error(res.values.numpy(), want[:, :6]).max() < 1e-8
    again = spectra.top_eigenvalues(game, params, k=6, krylov=24, reuse_graph=False)
    np.testing.assert_allclose(again.values.numpy(), res.values.numpy(), rtol=1e-12)


def test_top_k_of_a_neural_game_jacobian_equal_arpacks(mog_dense):
    """ARPACK (scipy.sparse.linalg.eigs) on a LinearOperator of the same matvec, for run 1."""
    game, params, _, _ = mog_dense
    matvec, n = spectra.field_operator(game, params)

    def one(v: np.ndarray) -> np.ndarray:
        V = torch.zeros(3, n, dtype=DT)
        V[1] = torch.as_tensor(np.real(v).ravel())
        return matvec(V)[1].numpy()

    ref = arpack_eigs(LinearOperator((n, n), matvec=one, dtype=np.float64), k=6, which="LM",
                      tol=0, v0=np.ones(n), return_eigenvectors=False)
    got = spectra.top_eigenvalues(game, params, k=6, krylov=24).values.numpy()[1:2]
    assert matched_error(got, ref[None]).max() < 1e-8


@pytest.mark.invariance
def test_a_neural_run_alone_has_the_spectrum_it_has_in_a_batch(mog_dense):
    """Bit for bit: the game's products are (test_mog), and so is everything Arnoldi does per run."""
    game, params, _, _ = mog_dense
    batch = spectra.at(game, params, k=6, krylov=24)
    g1, p1 = mog([2])
    alone = spectra.at(g1, p1, k=6, krylov=24)
    assert alone.keys() == batch.keys()
    for key, value in batch.items():
        np.testing.assert_array_equal(np.asarray(alone[key])[0], np.asarray(value)[2])


def test_at_with_k_gives_the_top_k_and_the_split_along_the_field(mog_dense):
    """With the split against spectra.decomposition of the dense H at ξ, both of the analysis
    stream's samples."""
    game, params, H, lam = mog_dense
    top = spectra.at(game, params, k=5, krylov=24)
    with game.using(stability._analysis_rng(game)):
        dense = spectra.decomposition(H, spectra.field(game, params))
    assert top["eig"].shape == (3, 5)
    assert matched_error(top["eig"].numpy(), top_by_modulus(lam, 5)).max() < 1e-8
    re = top["eig"].real.numpy()            # sorted as spectra.eigenvalues sorts: by real part
    assert (np.diff(re, axis=1) <= 1e-12).all()
    for key in ("xi_S_xi", "S_xi_norm", "A_xi_norm"):
        np.testing.assert_allclose(top[key], dense[key], rtol=1e-10, atol=1e-14)
    for key in ("S_norm", "A_norm", "A_share"):
        assert np.isnan(top[key]).all()
    assert (top["eig_residual"] < 1e-10).all()


def test_at_with_k_on_the_update_map():
    """Simultaneous SGD on xᵀAy (dim 8): the update map's top eigenvalues by modulus are
    1 ∓ iησ for the largest σ (its state, 32 coordinates, exceeds the Krylov dimension 12)."""
    game, rule, opts, params = bilinear_with_sgd(8, 1, [0.1, 0.2])
    dense = spectra.at(game, params, rule=rule, optimizers=opts)
    top = spectra.at(game, params, rule=rule, optimizers=opts, k=4, krylov=12)
    assert top["map_eig"].shape == (2, 4)
    want = top_by_modulus(dense["map_eig"].numpy(), 4)
    assert matched_error(top["map_eig"].numpy(), want).max() < 1e-10
    np.testing.assert_allclose(top["map_radius"], dense["map_radius"], rtol=1e-12)
    sigma = np.linalg.svd(game.matrix.numpy(), compute_uv=False)
    np.testing.assert_allclose(top["im_max"], sigma.max(), rtol=1e-12)
