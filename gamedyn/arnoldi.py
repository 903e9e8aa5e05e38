"""The eigenvalues of largest modulus of R linear operators at once, matrix-free: a batched Arnoldi
iteration with thick restarts, over the run axis.

Each run r has its own real operator A_r on Rⁿ, known only through products: ``matvec(V)`` maps
``V`` ``[R, n]`` (row r a vector of run r) to ``[R, n]`` (row r is A_r V_r), all runs in one call
(one Jacobian-vector product of a batched game gives every run's product at once). Every run's
iteration uses only its own row, so a run's result does not depend on its batch (up to rounding).

**Arnoldi** (Arnoldi 1951, "The principle of minimized iterations in the solution of the matrix
eigenvalue problem", Q. Appl. Math. 9, 17–29; Saad, "Numerical Methods for Large Eigenvalue
Problems", 2nd ed., SIAM 2011, §6.2): from a unit start vector v₁, for j = 1…m,

    w = A v_j,   h_ij = ⟨v_i, w⟩,  w ← w − h_ij v_i   (i = 1…j, modified Gram–Schmidt),
    h_{j+1,j} = ‖w‖,   v_{j+1} = w / h_{j+1,j},

with a second Gram–Schmidt pass over the same v_i (its coefficients added to h_ij): "twice is
enough" (Kahan, in Parlett 1980, §6.9; Giraud, Langou & Rozložník 2005), so V_m stays orthonormal
to rounding. This gives A V_m = V_m H_m + h_{m+1,m} v_{m+1} e_mᵀ with H_m = V_mᵀ A V_m upper
Hessenberg (m × m). The Ritz values θ (eigenvalues of H_m, ``torch.linalg.eig`` on all runs' small
matrices at once) approximate A's extreme eigenvalues; for a Ritz pair (θ, y), ‖y‖ = 1, the Ritz
vector x = V_m y has the residual ‖A x − θ x‖ = |h_{m+1,m}| |e_mᵀ y| (Saad 2011, §6.2), known
without another product.

**Thick restart** (Lehoucq & Sorensen 1996, "Deflation techniques for an implicitly restarted
Arnoldi iteration", SIAM J. Matrix Anal. Appl. 17, 789–821, which keep the wanted Ritz vectors by
implicit QR with the unwanted Ritz values as exact shifts; equivalently, as here, Morgan 1996,
Math. Comp. 65, 1213–1230, and Stewart 2001's Krylov–Schur, SIAM J. Matrix Anal. Appl. 23, 601–614,
which keep them explicitly): once the basis holds m vectors, keep the p Ritz values of largest
modulus, closed under conjugation, and P ∈ R^{m×p} an orthonormal basis of the real span of their
eigenvectors of H_m (the real and imaginary parts, by an SVD), an invariant subspace of H_m: H_m P
= P T with T = Pᵀ H_m P. Multiplying the Arnoldi relation by P,

    A (V_m P) = (V_m P) T + v_{m+1} (h_{m+1,m} e_mᵀ P),

a Krylov relation whose last row is full (not Hessenberg). The iteration goes on from v_{m+1} with
the first p columns of the small matrix [T; h_{m+1,m} e_mᵀ P] and the rest Arnoldi columns again; in
general the relation is A V_m = V_m G + v_{m+1} gᵀ and a Ritz pair's residual is |gᵀ y|. The kept
Ritz vectors converge and the rest of the space is spent on the next ones. Where a run's p wanted
values are closed under conjugation with one fewer vector than the others', its extra column is zero
(a zero basis vector, which contributes an exact, decoupled eigenvalue 0 to the small matrix and
nothing else; it never outranks a wanted value by modulus).

**Convergence**: run r has converged when each of its k leading Ritz pairs has a residual
|gᵀ y_i| ≤ ``tol`` · |θ₁| (relative to the largest Ritz value in modulus); its values are then frozen,
so they do not depend on how long other runs of the batch iterate. The eigenvalue errors are of the
order of the residual times the eigenvalue's condition number (Saad 2011, ch. 3): small for normal
operators, larger for strongly non-normal ones (game Jacobians can be). As with every Krylov method
(ARPACK's included), a small residual says that the values found are eigenvalues, not that none of
larger modulus exists: where the spectrum has no gap at the k-th value and the Krylov dimension is
small (say k + 2 on a random matrix whose eigenvalues fill a disk), the iteration can settle on a
set that misses one whose eigenvector the space has barely seen. The default dimension (at least
:data:`KRYLOV_MIN`) makes that unlikely: on 240 random 40…200-dimensional operators, top 1…7,
none was missed.

**Breakdown**: where h_{j+1,j} vanishes (below a few ε times ‖A v_j‖) the Krylov space of run r is
invariant and its Ritz values there are exact eigenvalues. The iteration continues that run with a
fresh random vector orthogonalised against its basis and h_{j+1,j} = 0, so the small matrix becomes
block triangular and the eigenvalues found so far are kept (Saad 2011, §6.2). Where m ≥ n the space
is the whole of Rⁿ after n steps: then m = n, one pass, no restart, and the Ritz values are all the
eigenvalues (to rounding). A run whose products are not finite gets NaN.

The start vector is fixed: a standard normal vector from a ``torch.Generator`` seeded with
``seed``, the same for every run (and the replacement vectors after a breakdown are seeded by their
position in the iteration), so a run's result depends only on its operator. The basis is kept in the
operator's dtype and device; the small matrices are handled on the CPU in float64.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import torch

Tensor = torch.Tensor
#: Default Krylov dimension: max(2k + 1, this), at most n (ARPACK's default is max(2k + 1, 20)).
KRYLOV_MIN = 30


@dataclasses.dataclass
class ArnoldiResult:
    """What :func:`eigs` found: ``values`` ``[R, k]`` complex (complex128, on the CPU), the k
    eigenvalues of largest modulus of each run's operator, sorted by decreasing modulus (conjugate
    pairs adjacent, +Im first; a pair that the k-th place splits gives its +Im member);
    ``residuals`` ``[R, k]`` the Ritz pairs' relative residuals ‖Ax − θx‖/|θ₁|; ``converged``
    ``[R]`` whether every one of them is at most ``tol``; ``restarts`` the restarts done and
    ``matvecs`` the calls of ``matvec`` made (each one product for every run)."""

    values: Tensor
    residuals: Tensor
    converged: Tensor
    restarts: int
    matvecs: int


def _order(theta: Tensor) -> Tensor:
    """Indices sorting each row of ``theta`` [R, m] by decreasing modulus, then decreasing real
    part, then decreasing imaginary part (so a conjugate pair, of equal modulus and real part bit
    for bit as LAPACK returns it, is adjacent with +Im first)."""
    idx = torch.argsort(-theta.imag, dim=-1, stable=True)
    for key in (-theta.real, -theta.abs()):
        idx = torch.gather(idx, -1, torch.argsort(torch.gather(key, -1, idx), dim=-1, stable=True))
    return idx


def _start(n: int, seed: int, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    """A unit standard normal vector [n] from a fixed seed (drawn on the CPU in float64)."""
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(n, generator=g, dtype=torch.float64)
    return (v / v.norm()).to(dtype=dtype, device=device)


def _orthogonalise(V: Tensor, j: int, w: Tensor) -> tuple[Tensor, Tensor]:
    """w [R, n] made orthogonal to V[:, :j] (modified Gram–Schmidt, then a second pass); the
    coefficients [R, j] summed over both passes."""
    h = w.new_zeros(w.shape[0], j)
    for _ in range(2):
        for i in range(j):
            c = (V[:, i] * w).sum(-1)
            w = w - c[:, None] * V[:, i]
            h[:, i] += c
    return w, h


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for small batched matrices, as an elementwise product summed per entry: the same
    bits for a run whatever the batch (a batched matmul may block differently for one matrix)."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def eigs(matvec: Callable[[Tensor], Tensor], n_runs: int, n: int, k: int = 6, *,
         krylov: int | None = None, tol: float | None = None, max_restarts: int = 300,
         dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
         seed: int = 0, warn: bool = True) -> ArnoldiResult:
    """The ``k`` eigenvalues of largest modulus of each of ``n_runs`` real n × n operators, given
    by ``matvec`` (``[R, n]`` → ``[R, n]``, row r through run r's operator; see the module
    docstring), by thick-restarted Arnoldi with a Krylov dimension ``krylov`` (default
    max(2k + 1, :data:`KRYLOV_MIN`), at most n).

    ``tol``: the relative residual each of a run's k Ritz pairs must reach (default ε^¾ of
    ``dtype``: about 2e-12 in float64, 6e-6 in float32); at most ``max_restarts`` restarts, after
    which the runs that have not converged keep their last Ritz values, with ``converged`` False
    (and a RuntimeWarning if ``warn``). Vectors are in ``dtype`` on ``device``; ``seed`` fixes the
    start vector."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n = {n}, not {k}")
    R = int(n_runs)
    m = min(n, max(2 * k + 1, KRYLOV_MIN) if krylov is None else int(krylov))
    full = m == n                              # the whole space: one pass, exact
    if not full and m < k + 2:
        raise ValueError(f"the Krylov dimension ({m}) must be at least k + 2 = {k + 2} (or n)")
    if tol is None:
        tol = float(torch.finfo(dtype).eps) ** 0.75
    # kept at a restart: p of the m (p + 1 columns with a possible zero one), at least one new
    keep = min(max(k, (m + k) // 2), m - 2)
    eps = float(torch.finfo(dtype).eps)

    V = torch.zeros(R, m + 1, n, dtype=dtype, device=device)
    G = torch.zeros(R, m + 1, m, dtype=torch.float64)  # A V_m = V_{m+1} G (small, CPU float64)
    V[:, 0] = _start(n, seed, dtype, device)
    bad = torch.zeros(R, dtype=torch.bool)
    done = torch.zeros(R, dtype=torch.bool)
    values = torch.full((R, k), complex(np.nan, np.nan), dtype=torch.complex128)
    residuals = torch.full((R, k), np.inf, dtype=torch.float64)
    j0, matvecs, restarts = 0, 0, 0
    while True:
        for j in range(j0, m):
            w = matvec(V[:, j].clone()).detach().to(dtype=dtype, device=V.device)
            matvecs += 1
            finite = torch.isfinite(w).all(-1)
            if not bool(finite.all()):
                bad |= ~finite.cpu()
                w = torch.where(finite[:, None], w, torch.zeros_like(w))
            size = w.norm(dim=-1)
            w, h = _orthogonalise(V, j + 1, w)
            beta = w.norm(dim=-1)
            G[:, : j + 1, j] = h.cpu().double()
            broke = beta <= 8 * eps * size          # an invariant subspace (or A v_j = 0)
            if j + 1 < n and bool(broke.any()):     # go on from a fresh vector in the complement
                g = torch.Generator().manual_seed(int(seed) * 1_000_003 + restarts * (m + 1) + j + 1)
                u = torch.randn(n, generator=g, dtype=torch.float64).to(dtype=dtype, device=V.device)
                u, _ = _orthogonalise(V, j + 1, u.expand(R, n))
                u = u / u.norm(dim=-1, keepdim=True)
                w = torch.where(broke[:, None], u, w / torch.where(broke, 1, beta)[:, None])
                beta = torch.where(broke, 0, beta)
            else:
                w = w / torch.where(beta > 0, beta, 1)[:, None]
            V[:, j + 1] = w
            G[:, j + 1, j] = beta.cpu().double()
        # Ritz pairs of the m × m matrix, their residuals |gᵀ y|, sorted by modulus
        H = G[:, :m].clone()
        H[bad] = 0
        theta, Y = torch.linalg.eig(H)
        idx = _order(theta)
        theta = torch.gather(theta, -1, idx)
        Y = torch.gather(Y, -1, idx[:, None, :].expand_as(Y))
        res = _mm(G[:, m:m + 1, :].to(Y.dtype), Y)[:, 0].abs()
        scale = theta[:, :1].abs()
        rel = torch.where(res == 0, 0, res / scale)
        conv = (rel[:, :k] <= tol).all(-1) | full | bad
        new = conv & ~done
        values[new], residuals[new] = theta[new, :k], rel[new, :k]
        done |= conv
        if bool(done.all()) or restarts >= max_restarts:
            break
        # thick restart: the p + 1 leading values if closed under conjugation, else p
        restarts += 1
        p = keep + 1
        closed = theta[:, keep].imag <= 0                       # [R]
        Ys = Y[:, :, :p].clone()
        Ys[~closed, :, keep] = 0
        U, _, _ = torch.linalg.svd(torch.cat([Ys.real, Ys.imag], -1), full_matrices=False)
        P = U[:, :, :p].clone()
        P[~closed, :, keep] = 0
        T = _mm(P.transpose(-1, -2), _mm(H, P))
        last = _mm(G[:, m:m + 1, :], P)                         # [R, 1, p]
        Pd = P.to(dtype=dtype, device=V.device)
        kept = torch.zeros(R, p, n, dtype=dtype, device=V.device)
        for i in range(m):                                      # V_m P, a run at a time's bits
            kept += Pd[:, i, :, None] * V[:, i, None, :]
        V[:, :p] = kept
        V[:, p] = V[:, m]
        V[:, p + 1:] = 0
        G.zero_()
        G[:, :p, :p] = T
        G[:, p, :p] = last[:, 0]
        j0 = p
    stale = ~done
    values[stale], residuals[stale] = theta[stale, :k], rel[stale, :k]
    values[bad] = complex(np.nan, np.nan)
    residuals[bad] = np.nan
    if warn and bool(stale.any()):
        warnings.warn(f"Arnoldi: {int(stale.sum())} of {R} runs did not reach a relative residual "
                      f"of {tol:.1e} for their {k} leading eigenvalues in {max_restarts} restarts "
                      f"(largest {float(residuals[stale].max()):.1e})", RuntimeWarning, stacklevel=2)
    return ArnoldiResult(values=values, residuals=residuals, converged=done & ~bad,
                         restarts=restarts, matvecs=matvecs)
