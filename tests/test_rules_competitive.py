"""Competitive gradient descent, unrolled GANs and best-response play, against closed forms written
in numpy, hand-derived second derivatives of the Dirac-GAN, finite differences of independent
numpy unrolls, and hand-run inner loops."""

import math

import numpy as np
import pytest
import torch

from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.rules import RULES, Context
from gamedyn.rules.cgd import cg_normal_equations, conjugate_gradient

from .conftest import build, series, simulate

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


# --- helpers: components built directly, and the Dirac-GAN in numpy -----------------------------

def sgd(gen_lr, disc_lr, momentum=0.0):
    return {"gen": build(OPTIMIZERS, "sgd", [{"lr": gen_lr, "momentum": momentum}]),
            "disc": build(OPTIMIZERS, "sgd", [{"lr": disc_lr, "momentum": momentum}])}


def matrix(dim, kind="random", seed=0):
    return GAMES.get("bilinear").build([{"dim": dim, "A": kind, "A_seed": seed}], DT).matrix.numpy()


def point(game_params, requires_grad=False):
    return {pl: {k: torch.tensor(np.atleast_1d(v)[None] if np.ndim(v) else [v], dtype=DT,
                                 requires_grad=requires_grad) for k, v in named.items()}
            for pl, named in game_params.items()}


def sig(t):
    return 1.0 / (1.0 + np.exp(-t))


def softplus(t):
    return np.log1p(np.exp(t))


def dirac_gen_loss(loss, theta, psi):
    """L_gen of the Dirac-GAN: F(ψθ) + F(0) with F(t) = −log(1 + e^{−t}) (gan), softplus(ψθ) (nsgan)."""
    t = psi * theta
    return softplus(t) if loss == "nsgan" else -softplus(-t) - math.log(2.0)


def dirac_disc_grad(theta, psi):
    """∂ψ L_disc = ∂ψ [−F(ψθ) − F(0)] = −θ σ(−ψθ) (gan and nsgan)."""
    return -theta * sig(-psi * theta)


def vjp_through_step(new, params, c):
    """(∂z⁺/∂z)ᵀc on a bilinear game, z = (x, y) of run 0: one torch.autograd.grad through the step."""
    dim = params["gen"]["x"].shape[1]
    out = ((new["gen"]["x"][0] * torch.tensor(c[:dim])).sum()
           + (new["disc"]["y"][0] * torch.tensor(c[dim:])).sum())
    gx, gy = torch.autograd.grad(out, [params["gen"]["x"], params["disc"]["y"]])
    return np.concatenate([gx[0].numpy(), gy[0].numpy()])


def xy_rows(traj, dim):
    x = np.stack([series(traj, f"gen.x[{i}]") for i in range(dim)], 1)
    y = np.stack([series(traj, f"disc.y[{i}]") for i in range(dim)], 1)
    return x, y


# --- CGD -----------------------------------------------------------------------------------------

def cgd_closed_form(gx, gy, Dxy_f, Dyx_g, ex, ey):
    """The CGD step (Schäfer & Anandkumar 2019, with per-player η), both systems by dense inverses."""
    Ix, Iy = np.eye(len(gx)), np.eye(len(gy))
    dx = -ex * np.linalg.inv(Ix - ex * ey * Dxy_f @ Dyx_g) @ (gx - ey * Dxy_f @ gy)
    dy = -ey * np.linalg.inv(Iy - ex * ey * Dyx_g @ Dxy_f) @ (gy - ex * Dyx_g @ gx)
    return dx, dy


@pytest.mark.parametrize("solver", ["cg", "cgnr"])
@pytest.mark.parametrize(("dim", "kind"), [(1, "identity"), (3, "random")])
@pytest.mark.parametrize(("gen_lr", "disc_lr"), [(0.3, 0.3), (0.2, 0.7)])
def test_cgd_one_step_on_bilinear_equals_the_closed_form(solver, dim, kind, gen_lr, disc_lr):
    """f = xᵀAy, g = −xᵀAy: ∇ₓf = Ay, ∇ᵧg = −Aᵀx, D²ₓᵧf = A, D²ᵧₓg = −Aᵀ."""
    _, traj = simulate({"name": "bilinear", "dim": dim, "A": kind}, {"name": "cgd", "solver": solver},
                       steps=1, init={"dist": "normal", "scale": 1.0}, seeds=[7],
                       optimizer={"name": "sgd", "lr": gen_lr, "disc": {"lr": disc_lr}})
    x, y = xy_rows(traj, dim)
    A = matrix(dim, kind)
    dx, dy = cgd_closed_form(A @ y[0], -A.T @ x[0], A, -A.T, gen_lr, disc_lr)
    np.testing.assert_allclose(x[1], x[0] + dx, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(y[1], y[0] + dy, rtol=1e-10, atol=1e-13)
    # and it is not simultaneous play
    assert np.abs(x[1] - (x[0] - gen_lr * A @ y[0])).max() > 1e-3


def dirac_cgd_step(loss, theta, psi, ex, ey):
    """One CGD step on the Dirac-GAN with hand-derived derivatives (t = ψθ, σ the logistic).

    gan:   f = F(t) + F(0), F′(t) = σ(−t), F″(t) = −σ(t)σ(−t); ∇θf = ψσ(−t),
           ∂²f/∂θ∂ψ = σ(−t) − tσ(t)σ(−t); g = −f, so ∇ψg = −θσ(−t), ∂²g/∂ψ∂θ = −∂²f/∂θ∂ψ.
    nsgan: f = softplus(t): ∇θf = ψσ(t), ∂²f/∂θ∂ψ = σ(t) + tσ(t)σ(−t);
           g as for gan: ∇ψg = −θσ(−t), ∂²g/∂ψ∂θ = −σ(−t) + tσ(t)σ(−t).
    """
    t = psi * theta
    s, sm = sig(t), sig(-t)
    if loss == "gan":
        gx, gy = psi * sm, -theta * sm
        a = sm - t * s * sm
        c = -a
    else:
        gx, gy = psi * s, -theta * sm
        a = s + t * s * sm
        c = -sm + t * s * sm
    den = 1.0 - ex * ey * a * c
    return theta - ex * (gx - ey * a * gy) / den, psi - ey * (gy - ex * c * gx) / den


@pytest.mark.parametrize(("loss", "solver"), [("gan", "cg"), ("gan", "cgnr"), ("nsgan", "cgnr")])
def test_cgd_one_step_on_the_dirac_gan_equals_hand_derived_formula(loss, solver):
    theta, psi, ex, ey = 0.7, -1.3, 0.4, 0.9
    _, traj = simulate({"name": "dirac", "loss": loss}, {"name": "cgd", "solver": solver}, steps=1,
                       init={"gen": {"theta": theta}, "disc": {"psi": psi}},
                       optimizer={"name": "sgd", "lr": ex, "disc": {"lr": ey}})
    th1, ps1 = dirac_cgd_step(loss, theta, psi, ex, ey)
    assert series(traj, "gen.theta")[-1] == pytest.approx(th1, rel=1e-11)
    assert series(traj, "disc.psi")[-1] == pytest.approx(ps1, rel=1e-11)


def test_cgd_rule_eta_overrides_the_optimizer_learning_rate_in_the_local_game():
    """eta = 0.5 in the local game, SGD lr 0.1 for the move: the direction is CGD's at η = 0.5."""
    theta, psi = 0.7, -1.3
    _, traj = simulate({"name": "dirac", "loss": "gan"}, {"name": "cgd", "eta": 0.5}, steps=1, lr=0.1,
                       init={"gen": {"theta": theta}, "disc": {"psi": psi}})
    th1, ps1 = dirac_cgd_step("gan", theta, psi, 0.5, 0.5)
    assert series(traj, "gen.theta")[-1] == pytest.approx(theta + 0.1 / 0.5 * (th1 - theta), rel=1e-11)
    assert series(traj, "disc.psi")[-1] == pytest.approx(psi + 0.1 / 0.5 * (ps1 - psi), rel=1e-11)


@pytest.mark.parametrize("eta", [0.3, 1.0, 3.0])
def test_cgd_on_xy_contracts_at_the_spectral_radius_of_its_iteration_matrix(eta):
    """On xy: Δx = −η(y + ηx)/(1 + η²), Δy = −η(−x + ηy)/(1 + η²), i.e. z⁺ = M z with
    M = [[1, −η], [η, 1]]/(1 + η²): a scaled rotation, so ‖z‖ shrinks by ρ(M) at every step."""
    M = np.array([[1.0, -eta], [eta, 1.0]]) / (1 + eta**2)
    rho = np.abs(np.linalg.eigvals(M)).max()
    steps = 30
    runs, traj = simulate("bilinear", {"name": "cgd", "solver": "cg"}, lr=eta, steps=steps,
                          init={"dist": "normal", "scale": 1.0}, seeds=[2])
    d = series(traj, "distance")
    np.testing.assert_allclose(d[1:] / d[:-1], rho, rtol=1e-9)
    assert rho < 1
    if rho**steps < 1e-3:
        assert runs.iloc[0]["dynamics"] == "converged"


def test_cgd_on_random_xay_contracts_at_the_spectral_radius_of_the_dense_iteration_matrix():
    """dim 3: z⁺ = Mz with M = I + [[−η²PAAᵀ, −ηPA], [ηQAᵀ, −η²QAᵀA]], P = (I + η²AAᵀ)⁻¹,
    Q = (I + η²AᵀA)⁻¹; the slowest mode dominates, so d_{k+1}/d_k → ρ(M) (here the next mode
    is 0.56/0.83 as fast: after 60 steps its share is ~1e-10)."""
    eta, dim, seed = 1.0, 3, 4
    A = matrix(dim, "random", seed=seed)
    I3 = np.eye(dim)
    P, Q = np.linalg.inv(I3 + eta**2 * A @ A.T), np.linalg.inv(I3 + eta**2 * A.T @ A)
    M = np.eye(2 * dim) + np.block([[-eta**2 * P @ A @ A.T, -eta * P @ A],
                                    [eta * Q @ A.T, -eta**2 * Q @ A.T @ A]])
    rho = np.abs(np.linalg.eigvals(M)).max()
    _, traj = simulate({"name": "bilinear", "dim": dim, "A": "random", "A_seed": seed},
                       {"name": "cgd", "solver": "cg"}, lr=eta, steps=60,
                       init={"dist": "normal", "scale": 1.0}, seeds=[1])
    d = series(traj, "distance")
    assert d[-1] / d[-2] == pytest.approx(rho, rel=1e-7)
    assert rho < 1


def test_cgd_counts_gradient_evaluations_and_hessian_vector_products():
    """On xy (dim 1) CG converges in one iteration. HVPs per step: right-hand side 1, dᵧ 1,
    cg: A p 2 (+ warm-start residual A x₀ 2); cgnr: Aᵀb 2, one iteration A p and Aᵀq 4
    (+ warm start A x₀ 2 and Aᵀr₀ 2)."""
    expected = {("cg", False): 4, ("cg", True): 6, ("cgnr", False): 8, ("cgnr", True): 12}
    for (solver, warm), hvps in expected.items():
        runs, _ = simulate("bilinear", {"name": "cgd", "solver": solver, "warm_start": warm},
                           lr=0.3, steps=5)
        assert runs.iloc[0]["grad_evals_per_step"] == 1
        assert runs.iloc[0]["hvps_per_step"] == hvps, (solver, warm)
        assert runs.iloc[0]["rule.solver"] == solver


def test_cgd_warm_started_trajectory_equals_the_cold_started_one():
    """A warm start only changes where CG starts; with r₀ = b − Ax₀ the solution is the same (with
    r₀ = b it would be off by x₀ = the previous direction)."""
    game = {"name": "bilinear", "dim": 3, "A": "random", "A_seed": 5}
    for solver in ("cg", "cgnr"):
        trajs = [simulate(game, {"name": "cgd", "solver": solver, "warm_start": w}, lr=0.4, steps=8,
                          init={"dist": "normal", "scale": 1.0}, seeds=[0])[1] for w in (False, True)]
        for a, b in zip(xy_rows(trajs[0], 3), xy_rows(trajs[1], 3)):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


# --- the batched CG solvers ----------------------------------------------------------------------

def batched(mats):
    M = torch.tensor(np.stack(mats), dtype=DT)
    return lambda v: torch.einsum("rij,rj->ri", M, v), lambda v: torch.einsum("rji,rj->ri", M, v)


def test_cg_warm_start_uses_the_residual_b_minus_A_x0():
    rng = np.random.default_rng(0)
    n = 5
    mats = []
    for _ in range(2):
        G = rng.standard_normal((n, n))
        mats.append(G @ G.T + n * np.eye(n))
    b = rng.standard_normal((2, n))
    x0 = rng.standard_normal((2, n))
    exact = np.stack([np.linalg.solve(m, bb) for m, bb in zip(mats, b)])
    mv, _ = batched(mats)
    tb = torch.tensor(b, dtype=DT)
    # (a) from the solution itself: nothing to do (0 iterations), x = x₀
    x, iters = conjugate_gradient(mv, tb, torch.tensor(exact, dtype=DT), tol=1e-8)
    assert iters.tolist() == [0, 0]
    np.testing.assert_allclose(x.numpy(), exact, rtol=1e-12)
    # (b) from an arbitrary x₀: the solution of Ax = b, not x₀ + A⁻¹b
    x, _ = conjugate_gradient(mv, tb, torch.tensor(x0, dtype=DT), tol=1e-13, max_iter=50)
    np.testing.assert_allclose(x.numpy(), exact, rtol=1e-9)
    # (c) one iteration by hand: r₀ = b − Ax₀, x₁ = x₀ + (r₀ᵀr₀ / r₀ᵀAr₀) r₀
    x, iters = conjugate_gradient(mv, tb, torch.tensor(x0, dtype=DT), tol=0.0, max_iter=1)
    for r in range(2):
        r0 = b[r] - mats[r] @ x0[r]
        x1 = x0[r] + (r0 @ r0) / (r0 @ mats[r] @ r0) * r0
        np.testing.assert_allclose(x[r].numpy(), x1, rtol=1e-12)
    assert iters.tolist() == [1, 1]


def test_cg_normal_equations_solve_nonsymmetric_systems_with_warm_start():
    rng = np.random.default_rng(1)
    n = 4
    mats = [np.eye(n) + 0.5 * rng.standard_normal((n, n)) for _ in range(2)]
    assert not np.allclose(mats[0], mats[0].T)
    b, x0 = rng.standard_normal((2, n)), rng.standard_normal((2, n))
    exact = np.stack([np.linalg.solve(m, bb) for m, bb in zip(mats, b)])
    mv, rmv = batched(mats)
    for start in (None, torch.tensor(x0, dtype=DT)):
        x, _ = cg_normal_equations(mv, rmv, torch.tensor(b, dtype=DT), start, tol=1e-14, max_iter=100)
        np.testing.assert_allclose(x.numpy(), exact, rtol=1e-8)
    # one CGLS iteration by hand: s₀ = Aᵀ(b − Ax₀), x₁ = x₀ + ‖s₀‖² / ‖As₀‖² s₀
    x, _ = cg_normal_equations(mv, rmv, torch.tensor(b, dtype=DT), torch.tensor(x0, dtype=DT),
                               tol=0.0, max_iter=1)
    for r in range(2):
        s0 = mats[r].T @ (b[r] - mats[r] @ x0[r])
        np.testing.assert_allclose(x[r].numpy(), x0[r] + (s0 @ s0) / np.sum((mats[r] @ s0) ** 2) * s0,
                                   rtol=1e-12)
    # plain CG is not a solver for these (it assumes symmetry)
    x, _ = conjugate_gradient(mv, torch.tensor(b, dtype=DT), tol=1e-14, max_iter=n)
    assert np.abs(x.numpy() - exact).max() > 1e-3


def test_cg_runs_stop_separately():
    """Run 0 (A = I) converges in 1 iteration, run 1 (A = diag(1, 2, 3, 4)) needs 4; run 0 is frozen
    meanwhile (α = 0), so both end at their own solutions."""
    mats = [np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])]
    b = np.array([[1.0, -2.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0]])
    mv, _ = batched(mats)
    x, iters = conjugate_gradient(mv, torch.tensor(b, dtype=DT), tol=1e-12, max_iter=20)
    assert iters.tolist() == [1, 4]
    np.testing.assert_allclose(x.numpy(), [b[0], b[1] / [1.0, 2.0, 3.0, 4.0]], rtol=1e-12)
    x, iters = conjugate_gradient(mv, torch.tensor(b, dtype=DT), tol=1e-12, max_iter=2)
    assert iters.tolist() == [1, 2]


def test_cgd_per_run_learning_rates_in_one_batch():
    """η per run: each run's step is its own closed form (the CG step sizes are per run)."""
    lrs = [0.1, 0.8, 2.5]
    runs, traj = simulate({"name": "bilinear", "dim": 3, "A": "random"}, {"name": "cgd", "tol": 1e-14},
                          lr=lrs, steps=1,
                          init={"dist": "normal", "scale": 1.0}, seeds=[3])
    assert runs["batch_id"].nunique() == 1 and len(runs) == 3
    A = matrix(3)
    for _, row in runs.iterrows():
        eta = row["optimizer.lr"]
        t = traj[traj["run_id"] == row["run_id"]]
        x, y = xy_rows(t, 3)
        dx, dy = cgd_closed_form(A @ y[0], -A.T @ x[0], A, -A.T, eta, eta)
        np.testing.assert_allclose(x[1], x[0] + dx, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(y[1], y[0] + dy, rtol=1e-10, atol=1e-13)


# --- CGD with create_graph: the solve is differentiated as the exact solution -----------------------

@pytest.mark.parametrize("solver", ["cg", "cgnr"])
@pytest.mark.parametrize("at_equilibrium", [True, False])
def test_cgd_step_jacobian_on_bilinear_equals_the_iteration_matrix(solver, at_equilibrium):
    """∂z⁺/∂z = M (the dense closed form above) — also at z = 0, where b = 0 stops CG at once (a
    solve differentiated through its iterations would give M = I there)."""
    eta, dim = 0.4, 2
    A = matrix(dim, "random", seed=1)
    I2 = np.eye(dim)
    P, Q = np.linalg.inv(I2 + eta**2 * A @ A.T), np.linalg.inv(I2 + eta**2 * A.T @ A)
    M = np.eye(2 * dim) + np.block([[-eta**2 * P @ A @ A.T, -eta * P @ A],
                                    [eta * Q @ A.T, -eta**2 * Q @ A.T @ A]])
    game = build(GAMES, "bilinear", [{"dim": dim, "A": "random", "A_seed": 1}])
    rule = build(RULES, "cgd", [{"solver": solver}])
    z0 = np.zeros(2 * dim) if at_equilibrium else np.array([0.3, -1.1, 0.8, 0.2])
    params = point({"gen": {"x": z0[:dim]}, "disc": {"y": z0[dim:]}}, requires_grad=True)
    ctx = Context(game, sgd(eta, eta), create_graph=True)
    new, _ = rule.step(ctx, params, rule.init(ctx, params))
    c = np.array([0.7, -0.2, 1.3, 0.4])
    np.testing.assert_allclose(vjp_through_step(new, params, c), M.T @ c, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(new["gen"]["x"][0].detach().numpy(), (M @ z0)[:dim], atol=1e-12)


@pytest.mark.parametrize(("loss", "solver"), [("gan", "cg"), ("gan", "cgnr"), ("nsgan", "cgnr")])
def test_cgd_step_derivative_on_the_dirac_gan_matches_finite_differences(loss, solver):
    """Here A depends on the point, so the derivative has the −A⁻¹(∂A)d term as well."""
    theta, psi, ex, ey, h = 0.7, -1.3, 0.4, 0.9, 1e-6
    game = build(GAMES, "dirac", [{"loss": loss}])
    rule = build(RULES, "cgd", [{"solver": solver}])
    params = point({"gen": {"theta": theta}, "disc": {"psi": psi}}, requires_grad=True)
    ctx = Context(game, sgd(ex, ey), create_graph=True)
    new, _ = rule.step(ctx, params, rule.init(ctx, params))
    leaves = [params["gen"]["theta"], params["disc"]["psi"]]
    for i, out in enumerate((new["gen"]["theta"], new["disc"]["psi"])):
        got = torch.autograd.grad(out.sum(), leaves, retain_graph=True)
        fd = [(np.array(dirac_cgd_step(loss, theta + h, psi, ex, ey))
               - np.array(dirac_cgd_step(loss, theta - h, psi, ex, ey))) / (2 * h),
              (np.array(dirac_cgd_step(loss, theta, psi + h, ex, ey))
               - np.array(dirac_cgd_step(loss, theta, psi - h, ex, ey))) / (2 * h)]
        np.testing.assert_allclose([got[0].item(), got[1].item()], [fd[0][i], fd[1][i]], rtol=1e-7,
                                   atol=1e-9)


# --- unrolled GAN --------------------------------------------------------------------------------

def dirac_unrolled_loss(loss, theta, psi, velocity, k, disc_lr, momentum=0.0):
    """L_gen(θ, ψ_k(θ)): k heavy-ball SGD steps of the discriminator from (ψ, velocity), in numpy."""
    for _ in range(k):
        velocity = momentum * velocity + dirac_disc_grad(theta, psi)
        psi = psi - disc_lr * velocity
    return dirac_gen_loss(loss, theta, psi)


def central(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("loss", ["gan", "nsgan"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_unrolled_generator_step_is_the_finite_difference_derivative_of_the_unrolled_loss(loss, k):
    theta, psi, gen_lr, disc_lr = 0.8, 0.5, 0.2, 0.9
    init = {"gen": {"theta": theta}, "disc": {"psi": psi}}
    opt = {"name": "sgd", "lr": gen_lr, "disc": {"lr": disc_lr}}
    _, traj = simulate({"name": "dirac", "loss": loss}, {"name": "unrolled", "k": k}, steps=1,
                       init=init, optimizer=opt)
    g_fd = central(lambda th: dirac_unrolled_loss(loss, th, psi, 0.0, k, disc_lr), theta)
    th1, ps1 = series(traj, "gen.theta")[-1], series(traj, "disc.psi")[-1]
    assert th1 == pytest.approx(theta - gen_lr * g_fd, rel=1e-9)
    # the discriminator's own step is the ordinary one at the current point
    assert ps1 == pytest.approx(psi - disc_lr * dirac_disc_grad(theta, psi), rel=1e-13)
    # and the generator's step is not that of simultaneous play (k = 0)
    _, sim = simulate({"name": "dirac", "loss": loss}, {"name": "unrolled", "k": 0}, steps=1,
                      init=init, optimizer=opt)
    g0 = central(lambda th: dirac_gen_loss(loss, th, psi), theta)
    assert series(sim, "gen.theta")[-1] == pytest.approx(theta - gen_lr * g0, rel=1e-9)
    assert abs(th1 - series(sim, "gen.theta")[-1]) > 1e-3


def test_unrolled_uses_the_discriminators_optimizer_state_momentum_over_several_steps():
    """Heavy-ball SGD (β = 0.5) for both players, k = 2: the look-ahead starts from the
    discriminator's current velocity. Four steps of the whole rule, re-done in numpy."""
    k, gen_lr, disc_lr, beta, steps = 2, 0.3, 0.6, 0.5, 4
    theta, psi, vg, vd = 1.0, 0.4, 0.0, 0.0
    expected = [(theta, psi)]
    for _ in range(steps):
        gg = central(lambda th, psi=psi, vd=vd: dirac_unrolled_loss("gan", th, psi, vd, k, disc_lr, beta),
                     theta)
        gd = dirac_disc_grad(theta, psi)
        vg, vd = beta * vg + gg, beta * vd + gd
        theta, psi = theta - gen_lr * vg, psi - disc_lr * vd
        expected.append((theta, psi))
    expected = np.array(expected)
    _, traj = simulate({"name": "dirac", "loss": "gan"}, {"name": "unrolled", "k": k}, steps=steps,
                       init={"gen": {"theta": 1.0}, "disc": {"psi": 0.4}},
                       optimizer={"name": "sgd", "lr": gen_lr, "momentum": beta, "disc": {"lr": disc_lr}})
    np.testing.assert_allclose(series(traj, "gen.theta"), expected[:, 0], rtol=1e-8)
    np.testing.assert_allclose(series(traj, "disc.psi"), expected[:, 1], rtol=1e-8)


@pytest.mark.parametrize("k", [1, 4])
def test_unrolled_on_bilinear_equals_closed_form_and_finite_differences(k):
    """y_k = y + kη_D Aᵀx, so ∇U(x) = Ay + 2kη_D AAᵀx; checked also against central differences of
    a numpy unroll."""
    dim, gen_lr, disc_lr = 2, 0.1, 0.3
    A = matrix(dim, "random", seed=0)
    _, traj = simulate({"name": "bilinear", "dim": dim, "A": "random"}, {"name": "unrolled", "k": k},
                       steps=1, init={"dist": "normal", "scale": 1.0}, seeds=[4],
                       optimizer={"name": "sgd", "lr": gen_lr, "disc": {"lr": disc_lr}})
    x, y = xy_rows(traj, dim)

    def unrolled(xx):
        yy = y[0].copy()
        for _ in range(k):
            yy = yy - disc_lr * (-A.T @ xx)
        return xx @ A @ yy

    fd = np.array([central(lambda s, i=i: unrolled(x[0] + s * np.eye(dim)[i]), 0.0) for i in range(dim)])
    closed = A @ y[0] + 2 * k * disc_lr * A @ A.T @ x[0]
    np.testing.assert_allclose(fd, closed, rtol=1e-8)
    np.testing.assert_allclose(x[1], x[0] - gen_lr * closed, rtol=1e-12)
    np.testing.assert_allclose(y[1], y[0] + disc_lr * A.T @ x[0], rtol=1e-12)


@pytest.mark.parametrize("game", [{"name": "dirac", "loss": "nsgan"}, {"name": "bilinear", "dim": 2}])
def test_unrolled_with_k0_is_simultaneous_play_exactly(game):
    init = {"dist": "normal", "scale": 1.0}
    runs_u, traj_u = simulate(game, {"name": "unrolled", "k": 0}, lr=0.3, steps=40, init=init, seeds=[1])
    runs_s, traj_s = simulate(game, "simultaneous", lr=0.3, steps=40, init=init, seeds=[1])
    np.testing.assert_array_equal(traj_u["value"].to_numpy(), traj_s["value"].to_numpy())
    for col in ("grad_evals_per_step", "hvps_per_step", "dynamics"):
        assert runs_u.iloc[0][col] == runs_s.iloc[0][col]


def test_unrolled_cost_columns():
    runs, _ = simulate({"name": "dirac", "loss": "gan"}, {"name": "unrolled", "k": 3}, steps=10)
    assert runs.iloc[0]["grad_evals_per_step"] == 4     # k look-ahead gradients + the final loss
    assert runs.iloc[0]["hvps_per_step"] == 3           # the reverse pass through k steps
    assert runs.iloc[0]["rule.k"] == 3


def test_unrolled_step_jacobian_on_bilinear_with_create_graph():
    """x⁺ = x − η_G(Ay + 2kη_D AAᵀx), y⁺ = y + η_D Aᵀx: M = [[I − 2kη_Gη_D AAᵀ, −η_G A], [η_D Aᵀ, I]]."""
    dim, k, gen_lr, disc_lr = 2, 3, 0.1, 0.3
    A = matrix(dim, "random", seed=0)
    M = np.block([[np.eye(dim) - 2 * k * gen_lr * disc_lr * A @ A.T, -gen_lr * A],
                  [disc_lr * A.T, np.eye(dim)]])
    game = build(GAMES, "bilinear", [{"dim": dim, "A": "random"}])
    rule = build(RULES, "unrolled", [{"k": k}])
    z0 = np.array([0.5, -0.3, 1.2, 0.7])
    params = point({"gen": {"x": z0[:dim]}, "disc": {"y": z0[dim:]}}, requires_grad=True)
    ctx = Context(game, sgd(gen_lr, disc_lr), create_graph=True)
    new, _ = rule.step(ctx, params, rule.init(ctx, params))
    c = np.array([0.3, 1.1, -0.6, 0.9])
    np.testing.assert_allclose(vjp_through_step(new, params, c), M.T @ c, rtol=1e-12)


def test_unrolled_derivative_of_a_step_on_the_dirac_gan_with_create_graph():
    """dθ⁺/dθ through the unrolled gradient (second derivatives through the look-ahead), against
    central differences of the numpy step θ⁺(θ) = θ − η_G U′(θ), U′ itself by hand-coded chain rule
    via a nested central difference (h = 1e-4 outer, 1e-6 inner)."""
    k, theta, psi, gen_lr, disc_lr = 2, 0.8, 0.5, 0.2, 0.9
    game = build(GAMES, "dirac", [{"loss": "gan"}])
    rule = build(RULES, "unrolled", [{"k": k}])
    params = point({"gen": {"theta": theta}, "disc": {"psi": psi}}, requires_grad=True)
    ctx = Context(game, sgd(gen_lr, disc_lr), create_graph=True)
    new, _ = rule.step(ctx, params, rule.init(ctx, params))
    (got,) = torch.autograd.grad(new["gen"]["theta"].sum(), [params["gen"]["theta"]])

    def step(th):
        return th - gen_lr * central(lambda t: dirac_unrolled_loss("gan", t, psi, 0.0, k, disc_lr), th, 1e-6)

    assert got.item() == pytest.approx(central(step, theta, 1e-4), rel=1e-5)


# --- best response ------------------------------------------------------------------------------

def best_response_np(theta, psi, vg, vd, tol, max_inner, gen_lr, disc_lr, beta):
    """One best-response step on the Dirac-GAN (gan loss) by hand: inner heavy-ball steps of ψ while
    |∂ψ L_disc| > tol (at most max_inner), then θ steps with ∂θ L_gen = ψσ(−ψθ) at the point reached."""
    n = 0
    while True:
        g = dirac_disc_grad(theta, psi)
        if abs(g) <= tol or n == max_inner:
            break
        vd = beta * vd + g
        psi = psi - disc_lr * vd
        n += 1
    vg = beta * vg + psi * sig(-psi * theta)
    return theta - gen_lr * vg, psi, vg, vd, n


def test_best_response_inner_loops_stop_per_run_at_tol_or_max_inner():
    """Three runs in one batch, disc lr 2.0, 0.5 and 0.02 (heavy ball β = 0.3): each run stops its
    inner loop when |∇ψ L_disc| ≤ tol or after max_inner steps, its own count, as run by hand
    (counts per step: [3, 0, 1, 1], [14, 1, 3, 3], [25, 25, 25, 25]). Frozen runs keep their
    velocity too: runs 0 and 1 resume their inner loops at later steps from it."""
    tol, max_inner, gen_lr, beta, steps = 0.1, 25, 0.5, 0.3, 4
    disc_lrs = [2.0, 0.5, 0.02]
    counts, traj_np = [], []
    for lr in disc_lrs:
        s = (1.0, 0.0, 0.0, 0.0)
        n_r, path = [], [s[:2]]
        for _ in range(steps):
            *s, n = best_response_np(*s, tol, max_inner, gen_lr, lr, beta)
            n_r.append(n)
            path.append(tuple(s[:2]))
        counts.append(n_r)
        traj_np.append(np.array(path))
    counts = np.array(counts)                     # [run, step]
    assert counts.tolist() == [[3, 0, 1, 1], [14, 1, 3, 3], [25, 25, 25, 25]]

    rule = {"name": "best_response", "tol": tol, "max_inner": max_inner}
    opt = {"name": "sgd", "lr": gen_lr, "momentum": beta, "disc": {"lr": disc_lrs}}
    init = {"gen": {"theta": 1.0}, "disc": {"psi": 0.0}}
    runs, traj = simulate({"name": "dirac", "loss": "gan"}, rule, steps=steps, init=init, optimizer=opt)
    assert runs["batch_id"].nunique() == 1
    for r, lr in enumerate(disc_lrs):
        rid = runs[runs["optimizer.disc.lr"] == lr].iloc[0]["run_id"]
        np.testing.assert_allclose(series(traj, "gen.theta", rid), traj_np[r][:, 0], rtol=1e-12)
        np.testing.assert_allclose(series(traj, "disc.psi", rid), traj_np[r][:, 1], rtol=1e-12)
        # each run's own cost: one evaluation per inner iteration of its own, plus the final one
        row = runs[runs["run_id"] == rid].iloc[0]
        assert row["grad_evals"] == (counts[r] + 1).sum()
        assert row["grad_evals_per_step"] == pytest.approx((counts[r] + 1).mean())
        assert row["hvps"] == 0 and row["hvps_per_step"] == 0

    # a run's costs do not depend on its batch-mates: without the slow run, the same
    opt["disc"]["lr"] = disc_lrs[:2]
    runs2, _ = simulate({"name": "dirac", "loss": "gan"}, rule, steps=steps, init=init, optimizer=opt)
    for r, lr in enumerate(disc_lrs[:2]):
        row = runs2[runs2["optimizer.disc.lr"] == lr].iloc[0]
        assert row["grad_evals"] == (counts[r] + 1).sum() < steps * (max_inner + 1)

    # the state records each run's count (built directly: one batch of the three runs)
    game = build(GAMES, "dirac", [{"loss": "gan"}] * 3)
    br = build(RULES, "best_response", [{"tol": tol, "max_inner": max_inner}] * 3)
    opts = {"gen": build(OPTIMIZERS, "sgd", [{"lr": gen_lr, "momentum": beta}] * 3),
            "disc": build(OPTIMIZERS, "sgd", [{"lr": lr, "momentum": beta} for lr in disc_lrs])}
    ctx = Context(game, opts)
    params = {"gen": {"theta": torch.ones(3, dtype=DT)}, "disc": {"psi": torch.zeros(3, dtype=DT)}}
    state = br.init(ctx, params)
    for s in range(steps):
        params, state = br.step(ctx, params, state)
        assert state["inner_steps"].tolist() == counts[:, s].tolist()


def test_best_response_on_bilinear_runs_max_inner_steps():
    """On xy, ∇ᵧ L_disc = −x does not depend on y: no best response, so max_inner steps of
    y ← y + η_D x every time, then x ← x − η_G y."""
    max_inner, gen_lr, disc_lr = 7, 0.1, 0.05
    runs, traj = simulate("bilinear", {"name": "best_response", "max_inner": max_inner}, steps=2,
                          init={"gen": {"x": 1.0}, "disc": {"y": 0.5}},
                          optimizer={"name": "sgd", "lr": gen_lr, "disc": {"lr": disc_lr}})
    x, y = 1.0, 0.5
    xs, ys = [x], [y]
    for _ in range(2):
        y = y + max_inner * disc_lr * x
        x = x - gen_lr * y
        xs.append(x)
        ys.append(y)
    np.testing.assert_allclose(series(traj, "gen.x[0]"), xs, rtol=1e-13)
    np.testing.assert_allclose(series(traj, "disc.y[0]"), ys, rtol=1e-13)
    assert runs.iloc[0]["grad_evals_per_step"] == max_inner + 1


def test_best_response_step_derivative_with_create_graph():
    """Through the n inner steps actually taken (n constant near the point): against central
    differences of the numpy step with the same n."""
    theta, psi, tol, max_inner, gen_lr, disc_lr, h = 1.0, 0.0, 0.1, 50, 0.1, 0.5, 1e-6
    n = best_response_np(theta, psi, 0.0, 0.0, tol, max_inner, gen_lr, disc_lr, 0.0)[4]

    def step(th, ps):
        out = best_response_np(th, ps, 0.0, 0.0, tol, max_inner, gen_lr, disc_lr, 0.0)
        assert out[4] == n
        return np.array(out[:2])

    game = build(GAMES, "dirac", [{"loss": "gan"}])
    rule = build(RULES, "best_response", [{"tol": tol, "max_inner": max_inner}])
    params = point({"gen": {"theta": theta}, "disc": {"psi": psi}}, requires_grad=True)
    ctx = Context(game, sgd(gen_lr, disc_lr), create_graph=True)
    new, state = rule.step(ctx, params, rule.init(ctx, params))
    assert state["inner_steps"].item() == n > 1
    leaves = [params["gen"]["theta"], params["disc"]["psi"]]
    fd = np.stack([(step(theta + h, psi) - step(theta - h, psi)) / (2 * h),
                   (step(theta, psi + h) - step(theta, psi - h)) / (2 * h)], 1)   # [out, in]
    for i, out in enumerate((new["gen"]["theta"], new["disc"]["psi"])):
        got = torch.autograd.grad(out.sum(), leaves, retain_graph=True)
        np.testing.assert_allclose([g.item() for g in got], fd[i], rtol=1e-6, atol=1e-9)


def test_rule_parameters_are_validated():
    from gamedyn.errors import StudyError

    for name, bad in [("cgd", {"tol": -1.0}), ("cgd", {"max_iter": 0}), ("cgd", {"solver": "gmres"}),
                      ("cgd", {"eta": -0.1}), ("unrolled", {"k": -1}), ("unrolled", {"k": 1.5}),
                      ("best_response", {"max_inner": 0}), ("best_response", {"tol": -1e-3})]:
        with pytest.raises(StudyError):
            RULES.get(name).resolve(bad, f"rules.{name}")


# --- all three rules: stochastic and one-player games, study-level prediction ---------------------

def test_cgd_step_sees_one_set_of_samples_in_a_stochastic_game():
    """gan1d with a learned discriminator and minibatch gradients draws samples at every loss
    evaluation. A CGD step rewinds the stream before each, so it advances the stream by one
    evaluation's draws only, and CG sees one matrix: on the generator's 2 parameters, CGLS ends in
    at most 2 iterations (+1 for rounding); with fresh draws at every product it would not."""
    from gamedyn.init import initial_params
    from gamedyn.random import Streams

    game = build(GAMES, "gan1d", [{"discriminator": "learned", "gradient": "minibatch", "batch": 64}] * 2)
    game.rng = Streams(torch.tensor([1, 2]))
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": 0.1}] * 2) for p in ("gen", "disc")}
    rule = build(RULES, "cgd", [{"warm_start": False}] * 2)
    params = initial_params(game, [{"dist": "normal", "scale": 1.0}] * 2, [1, 2])
    ctx = Context(game, opts)
    c0 = game.rng.counter
    ctx.losses(params)
    per_evaluation = game.rng.counter - c0
    state = rule.init(ctx, params)
    c0 = game.rng.counter
    hvps = state["counts"]["hvps"]
    new, state = rule.step(ctx, params, state)
    assert game.rng.counter - c0 == per_evaluation > 0
    assert int(state["cg_iters"].max()) <= 3
    assert (state["counts"]["hvps"] - hvps > 4).all()


@pytest.mark.parametrize("rule", ["cgd", {"name": "unrolled", "k": 3}, "best_response"])
def test_one_player_game_is_gradient_descent(rule):
    game = {"name": "gan1d", "discriminator": "optimal", "nodes": 64}
    _, traj = simulate(game, rule, lr=0.05, steps=5, init={"dist": "normal", "scale": 0.5}, seeds=[3])
    _, ref = simulate(game, "simultaneous", lr=0.05, steps=5, init={"dist": "normal", "scale": 0.5},
                      seeds=[3])
    for v in ("gen.mu", "gen.log_sigma"):
        np.testing.assert_array_equal(series(traj, v), series(ref, v))


def test_study_stability_prediction_uses_the_exact_derivative_of_each_rule():
    """The batch runner's ``predicted_radius`` (Jacobian of one step at the equilibrium, through
    ``create_graph``) against closed forms on xy, η = 0.5: CGD 1/√(1 + η²); unrolled (k = 2)
    ρ([[1 − 2kη², −η], [η, 1]]) = 0.5; best response 1 (generator-only steps: near 0 the
    discriminator's gradient is below tol). Away from 0, best response with max_inner = 2 steps by
    M = [[1 − 2η², −η], [2η, 1]] (det 1, trace 1.5): it cycles, as observed."""
    eta, k = 0.5, 2
    expected = {
        "cgd": 1 / math.sqrt(1 + eta**2),
        "unrolled": np.abs(np.linalg.eigvals([[1 - 2 * k * eta**2, -eta], [eta, 1.0]])).max(),
        "best_response": 1.0,
    }
    rules = {"cgd": {"name": "cgd", "solver": "cg"}, "unrolled": {"name": "unrolled", "k": k},
             "best_response": {"name": "best_response", "max_inner": 2}}
    observed = {"cgd": "converged", "unrolled": "converged", "best_response": "cycling"}
    for name, rho in expected.items():
        runs, _ = simulate("bilinear", rules[name], lr=eta, steps=100,
                           init={"dist": "normal", "scale": 1.0})
        assert "predicted_radius" in runs, "the runs table has no stability prediction"
        assert runs.iloc[0]["predicted_radius"] == pytest.approx(rho, rel=1e-9), name
        assert runs.iloc[0]["dynamics"] == observed[name], name
