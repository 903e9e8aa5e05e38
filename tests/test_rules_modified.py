"""Extragradient, optimistic, extragradient from the past, consensus and SGA against the updates
written out by hand from the papers (numpy, closed-form fields), the spectral radii of hand-derived
iteration matrices, the study machinery's labels, and their stated costs."""

import numpy as np
import pytest
import torch

from gamedyn.errors import StudyError
from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.rules import RULES, Context
from gamedyn.study import make_study

from .conftest import series, simulate

F64 = torch.float64
ONE = {"dist": "constant", "scale": 1.0}
MODIFIED = ["extragradient", "optimistic", "past_extragradient", "consensus", "sga"]


# --- building blocks: components, flat coordinates z = (gen..., disc...) per run -----------------

def _build(registry, name, configs):
    cls = registry.get(name)
    return cls.build([cls.resolve(c, name) for c in configs], F64)


def _game(name, **cfg):
    return _build(GAMES, name, [cfg])


def _context(game, lr, n_runs, momentum=0.0, create_graph=False):
    opt = {p: _build(OPTIMIZERS, "sgd", [{"lr": lr, "momentum": momentum}] * n_runs)
           for p in game.players}
    return Context(game, opt, create_graph=create_graph)


def _to_params(game, z, requires_grad=False):
    z = torch.as_tensor(np.asarray(z, dtype=float), dtype=F64)
    out, i = {}, 0
    for player, named in game.shapes().items():
        out[player] = {}
        for name, shape in named.items():
            n = int(np.prod(shape))
            out[player][name] = z[:, i:i + n].reshape((z.shape[0],) + tuple(shape)).clone() \
                .requires_grad_(requires_grad)
            i += n
    return out


def _flat(params):
    return torch.cat([v.reshape(v.shape[0], -1) for named in params.values() for v in named.values()],
                     1)


def _trajectory(game, rule_cfgs, z0, lr, steps, momentum=0.0):
    """z_0 … z_steps (each [R, n]) from the rule as implemented, one config per run."""
    rule = _build(RULES, rule_cfgs[0]["name"],
                  [{k: v for k, v in c.items() if k != "name"} for c in rule_cfgs])
    ctx = _context(game, lr, len(z0), momentum)
    params = _to_params(game, z0)
    with torch.no_grad():  # as the batch runner calls the rule
        state = rule.init(ctx, params)
        out = [_flat(params).numpy()]
        for _ in range(steps):
            with torch.enable_grad():
                params, state = rule.step(ctx, params, state)
            out.append(_flat(params).detach().numpy())
    return out


# --- closed-form fields and Jacobians (numpy, per run) ---------------------------------------------

def _bilinear(A):
    """ξ(x, y) = (Ay, −Aᵀx), i.e. ξ = Jz with J = [[0, A], [−Aᵀ, 0]]."""
    n = A.shape[0]
    J = np.block([[np.zeros((n, n)), A], [-A.T, np.zeros((n, n))]])
    return (lambda z: z @ J.T), (lambda z: np.broadcast_to(J, (len(z), 2 * n, 2 * n))), J


def _fp(t):
    return 1.0 / (1.0 + np.exp(t))          # f′(t) for f(t) = −log(1 + e^{−t})


def _fpp(t):
    return -_fp(t) * (1.0 - _fp(t))          # f″(t)


def _dirac_field(z):
    """Dirac-GAN (gan): ξ = (∂_θ L, −∂_ψ L) = (ψ f′(ψθ), −θ f′(ψθ)), L = f(ψθ) + f(0)."""
    th, ps = z[:, 0], z[:, 1]
    a = _fp(th * ps)
    return np.stack([ps * a, -th * a], 1)


def _dirac_jacobian(z):
    """∂ξ/∂z by hand: with t = ψθ, a = f′(t), b = f″(t): [[ψ²b, a + tb], [−(a + tb), −θ²b]]."""
    th, ps = z[:, 0], z[:, 1]
    t = th * ps
    a, b = _fp(t), _fpp(t)
    return np.stack([np.stack([ps * ps * b, a + t * b], 1),
                     np.stack([-(a + t * b), -th * th * b], 1)], 1)


def _mv(M, v):
    return np.einsum("rij,rj->ri", M, v)


def _mtv(M, v):
    return np.einsum("rji,rj->ri", M, v)


# --- the rules written out from the papers (SGD, learning rate η, heavy-ball β) ---------------------

def _hand(rule, F, Jac, z0, eta, steps, beta=0.0, gamma=None, lam=None, align=False, eps=0.1):
    z = np.array(z0, dtype=float)
    out = [z.copy()]
    v = np.zeros_like(z)                    # SGD velocity (heavy ball, v_0 = 0)
    prev = F(z)                             # ξ_{−1} := ξ(z_0) (optimistic); ξ(z_{−½}) := ξ(z_0) (past EG)
    for _ in range(steps):
        if rule == "extragradient":         # z½ = z − η(βv + ξ(z)), then z⁺ = z − η(βv + ξ(z½))
            half = z - eta * (beta * v + F(z))
            v = beta * v + F(half)
            z = z - eta * v
        elif rule == "optimistic":          # z⁺ = z − 2ηξ_k + ηξ_{k−1}
            g = F(z)
            z = z - eta * (2 * g - prev)
            prev = g
        elif rule == "past_extragradient":  # z½ = z − ηξ(z_{k−½}), z⁺ = z − ηξ(z½)
            half = z - eta * (beta * v + prev)
            prev = F(half)
            v = beta * v + prev
            z = z - eta * v
        elif rule == "consensus":           # z⁺ = z − η(ξ + γJᵀξ)
            g = F(z)
            z = z - eta * (g + gamma[:, None] * _mtv(Jac(z), g))
        elif rule == "sga":                 # z⁺ = z − η(ξ + λAᵀξ), Aᵀξ = (Hᵀξ − Hξ)/2
            g, H = F(z), Jac(z)
            ht = _mtv(H, g)
            at = (ht - _mv(H, g)) / 2
            lam_k = lam.copy()
            if align:
                d = z.shape[1]
                lam_k = lam * np.sign((g * ht).sum(1) * (at * ht).sum(1) / d + eps)
            z = z - eta * (g + lam_k[:, None] * at)
        out.append(z.copy())
    return out


def _random_points(n_runs, dim, seed, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n_runs, dim)) * scale


GAMES_BY_HAND = {
    "bilinear-1": lambda: (_game("bilinear", dim=1), *_bilinear(np.eye(1))[:2]),
    "bilinear-2-random": lambda: (lambda g: (g, *_bilinear(g.matrix.numpy())[:2]))(
        _game("bilinear", dim=2, A="random", A_seed=0)),
    "dirac-gan": lambda: (_game("dirac", loss="gan"), _dirac_field, _dirac_jacobian),
}


def test_hand_dirac_jacobian_matches_finite_differences_of_the_hand_field():
    z = _random_points(5, 2, 1)
    h = 1e-6
    fd = np.stack([(_dirac_field(z + h * e) - _dirac_field(z - h * e)) / (2 * h)
                   for e in np.eye(2)], 2)
    np.testing.assert_allclose(_dirac_jacobian(z), fd, atol=1e-8)


RULE_CASES = [
    ("extragradient", {}),
    ("optimistic", {}),
    ("past_extragradient", {}),
    ("consensus", {"gamma": 0.7}),
    ("sga", {"lam": 0.8, "align": False}),
    ("sga", {"lam": 0.8, "align": True}),
]


@pytest.mark.parametrize("game_key", list(GAMES_BY_HAND))
@pytest.mark.parametrize(("rule", "cfg"), RULE_CASES, ids=lambda c: str(c))
def test_first_two_steps_match_the_paper_by_hand(game_key, rule, cfg):
    """Four non-equilibrium points at once (the run axis), η = 0.15: z_1 and z_2 by hand."""
    game, F, Jac = GAMES_BY_HAND[game_key]()
    n = sum(int(np.prod(s)) for named in game.shapes().values() for s in named.values())
    z0 = _random_points(4, n, 7, scale=1.5)
    eta = 0.15
    got = _trajectory(game, [{"name": rule, **cfg}] * 4, z0, eta, steps=2)
    kw = {"gamma": np.full(4, cfg.get("gamma", 0.0)), "lam": np.full(4, cfg.get("lam", 0.0)),
          "align": cfg.get("align", False)}
    want = _hand(rule, F, Jac, z0, eta, 2, **kw)
    assert not np.allclose(want[1], z0)            # a real move
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-12, atol=1e-14)


def test_sga_alignment_picks_the_sign_per_run_on_the_dirac_gan():
    """Per-run λ = lam·sign(⟨ξ, Hᵀξ⟩⟨Aᵀξ, Hᵀξ⟩/d + ε), d = 2. Run 0 sits where the criterion is
    negative (λ < 0), run 1 where it is positive; run 2 has ε between |T|/d and |T| for a negative
    product T, so only the division by d = 2 makes λ positive there."""
    z0 = np.array([[-0.26, 2.73], [1.07, -0.72], [-0.26, 2.73]])
    g, H = _dirac_field(z0), _dirac_jacobian(z0)
    ht = _mtv(H, g)
    at = (ht - _mv(H, g)) / 2
    T = (g * ht).sum(1) * (at * ht).sum(1)
    assert T[0] < -1.0 and T[1] > 0.0
    eps = np.array([0.1, 0.1, 0.75 * abs(T[2])])
    lam = np.array([1.0, 0.5, 1.0])
    signs = np.sign(T / 2 + eps)
    assert signs.tolist() == [-1.0, 1.0, 1.0] and np.sign(T[2] + eps[2]) == -1.0
    cfgs = [{"name": "sga", "lam": float(lam[r]), "eps": float(eps[r])} for r in range(3)]
    got = _trajectory(_game("dirac", loss="gan"), cfgs, z0, 0.1, steps=1)[1]
    want = z0 - 0.1 * (g + (lam * signs)[:, None] * at)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    plain = z0 - 0.1 * (g + lam[:, None] * at)      # what ignoring the alignment would give
    assert not np.allclose(got[0], plain[0])


def test_optimistic_step0_is_the_simultaneous_step_and_step1_uses_2xi1_minus_xi0():
    """On x·y from (x, y) = (1, 2), η = 0.1, with ξ = (y, −x):
    ξ_0 = (2, −1), z_1 = z_0 − 0.1ξ_0 = (0.8, 2.1)  (ξ_{−1} = ξ_0; a zero history would give
    (0.6, 2.2)); ξ_1 = (2.1, −0.8), 2ξ_1 − ξ_0 = (2.2, −0.6), z_2 = (0.58, 2.16)."""
    init = {"gen": {"x": 1.0}, "disc": {"y": 2.0}}
    _, opt = simulate("bilinear", "optimistic", lr=0.1, steps=2, init=init)
    _, sim = simulate("bilinear", "simultaneous", lr=0.1, steps=1, init=init)
    x, y = series(opt, "gen.x[0]"), series(opt, "disc.y[0]")
    assert (x[1], y[1]) == (series(sim, "gen.x[0]")[1], series(sim, "disc.y[0]")[1])
    np.testing.assert_allclose([x[1], y[1]], [0.8, 2.1], rtol=1e-14)
    np.testing.assert_allclose([x[2], y[2]], [0.58, 2.16], rtol=1e-14)


@pytest.mark.parametrize("rule", ["extragradient", "past_extragradient"])
def test_extrapolation_leaves_the_momentum_state_alone(rule):
    """Heavy-ball SGD (β = 0.5): the extrapolation uses βv_k + field, but only the update's field
    enters v_{k+1} (the extrapolation's optimizer state is discarded). Three steps by hand."""
    F, Jac, _ = _bilinear(np.array([[1.0]]))
    z0 = np.array([[1.0, 0.5], [-0.3, 2.0]])
    got = _trajectory(_game("bilinear", dim=1), [{"name": rule}] * 2, z0, 0.2, steps=3,
                      momentum=0.5)
    want = _hand(rule, F, Jac, z0, 0.2, 3, beta=0.5)
    for k in range(4):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-13)


def test_past_extragradient_iterates_follow_from_the_optimistic_ones():
    """With SGD and the stated first steps, o_{k+1} = z_{k+½}, hence z_k = o_{k+1} + ηξ(o_k)
    (o: optimistic, z: past extragradient, same z_0), here on the (nonlinear) Dirac-GAN."""
    game, eta, K = _game("dirac", loss="gan"), 0.2, 15
    z0 = _random_points(3, 2, 5, scale=1.5)
    o = _trajectory(game, [{"name": "optimistic"}] * 3, z0, eta, steps=K + 1)
    z = _trajectory(game, [{"name": "past_extragradient"}] * 3, z0, eta, steps=K)
    for k in range(K + 1):
        np.testing.assert_allclose(z[k], o[k + 1] + eta * _dirac_field(o[k]), rtol=1e-10,
                                   atol=1e-12)


# --- long-run rates on xᵀAy against hand-derived iteration matrices -------------------------------

def _radius(rule, J, eta, gamma=0.0):
    n = J.shape[0]
    eye, zero = np.eye(n), np.zeros((n, n))
    if rule == "extragradient":
        M = eye - eta * J + eta**2 * J @ J
    elif rule == "optimistic":                   # state (z_k, z_{k−1})
        M = np.block([[eye - 2 * eta * J, eta * J], [eye, zero]])
    elif rule == "past_extragradient":           # state (z_k, z_{k−½})
        M = np.block([[eye - eta * J, eta**2 * J @ J], [eye, -eta * J]])
    else:                                        # consensus / sga (λ = γ > 0): ξ_γ = (J + γJᵀJ)z
        M = eye - eta * (J + gamma * J.T @ J)
    return np.abs(np.linalg.eigvals(M)).max()


def _observed_factor(runs, traj, k0, k):
    """(d_k / d_k0)^{1/(k − k0)} per run, k0 and k being recorded steps."""
    out = {}
    for rid in runs["run_id"]:
        t = traj[(traj["variable"].astype(str) == "distance") & (traj["run_id"].astype(str) == rid)]
        d = dict(zip(t["step"], t["value"]))
        out[rid] = (d[k] / d[k0]) ** (1.0 / (k - k0))
    return out


@pytest.mark.parametrize(("rule", "extra"), [
    ("extragradient", {}), ("optimistic", {}), ("past_extragradient", {}),
    ("consensus", {"gamma": [0.3, 1.0]}), ("sga", {"lam": [0.3, 1.0]}),
])
def test_contraction_factor_on_x_y_is_the_spectral_radius(rule, extra):
    """xy (A = 1), η ∈ {0.1, 0.3} (and γ or λ ∈ {0.3, 1} in the same batch): (d_300/d_100)^{1/200}
    against the largest |eigenvalue| of the hand-derived iteration matrix."""
    runs, traj = simulate("bilinear", {"name": rule, **extra}, lr=[0.1, 0.3], steps=300,
                          record_every=100, init=ONE)
    assert runs["batch_id"].nunique() == 1       # η, γ, λ are per-run parameters
    _, _, J = _bilinear(np.eye(1))
    factors = _observed_factor(runs, traj, 100, 300)
    for _, row in runs.iterrows():
        w = row.get("rule.gamma", row.get("rule.lam", 0.0))
        rho = _radius(rule, J, row["optimizer.lr"], w)
        assert rho < 1.0
        assert factors[row["run_id"]] == pytest.approx(rho, rel=1e-10)


@pytest.mark.parametrize("rule", MODIFIED)
def test_contraction_factor_with_a_random_2x2_coupling(rule):
    """A random 2×2 A (seed 1, singular values 0.815 and 0.484; two rotation planes contracting at
    different rates), random start, η = 0.4: the slower plane dominates the long run."""
    game = {"name": "bilinear", "dim": 2, "A": "random", "A_seed": 1}
    runs, traj = simulate(game, rule, lr=0.4, steps=400, record_every=200,
                          init={"dist": "normal", "scale": 1.0}, seeds=[3])
    A = _game("bilinear", dim=2, A="random", A_seed=1).matrix.numpy()
    _, _, J = _bilinear(A)
    rho = _radius(rule, J, 0.4, 1.0)             # consensus γ and SGA λ at their default 1
    observed = _observed_factor(runs, traj, 200, 400)[runs["run_id"][0]]
    assert observed == pytest.approx(rho, rel=1e-6)


def test_simultaneous_radius_is_above_one_for_comparison():
    _, _, J = _bilinear(np.eye(1))
    assert np.abs(np.linalg.eigvals(np.eye(2) - 0.1 * J)).max() == pytest.approx(np.sqrt(1.01))


# --- qualitative parity through the study machinery -----------------------------------------------

LRS = [0.1, 0.2]


def test_simultaneous_play_diverges_on_the_bilinear_game_at_these_step_sizes():
    sim, _ = simulate("bilinear", "simultaneous", lr=LRS, steps=300, record_every=10, init=ONE)
    assert list(sim["dynamics"]) == ["diverged", "diverged"]


@pytest.mark.parametrize("rule", [*MODIFIED, {"name": "sga", "lam": 1.0, "align": False}],
                         ids=lambda r: str(r))
def test_modified_rules_converge_on_the_bilinear_game(rule):
    """Labelled by the study machinery (late-window shrinkage or 10⁻³ of d_0), from (1, 1)."""
    runs, _ = simulate("bilinear", rule, lr=LRS, steps=300, record_every=10, init=ONE)
    assert list(runs["dynamics"]) == ["converged", "converged"]
    assert (runs["final_distance"] < runs["initial_distance"]).all()


def test_consensus_default_gamma_converges_on_the_dirac_gan_at_the_notebook_step():
    """h = 0.2 from (1, 1) (Mescheder et al.'s notebook). Locally, with σ = f′(0) = ½, SGD needs
    η < 2γ/(1 + γ²σ²): γ = 1 converges; γ = 0.1 (bound 0.1995) does not."""
    runs, _ = simulate({"name": "dirac", "loss": "gan"}, {"name": "consensus", "gamma": [0.1, 1.0]},
                       lr=0.2, steps=300, record_every=5, init=ONE)
    label = dict(zip(runs["rule.gamma"], runs["dynamics"]))
    assert label[1.0] == "converged" and label[0.1] != "converged"
    assert 0.2 > 2 * 0.1 / (1 + 0.1**2 * 0.25)


# --- costs, validation, differentiability -----------------------------------------------------------

@pytest.mark.parametrize(("rule", "grads", "hvps"), [
    ("extragradient", 2.0, 0.0),
    ("optimistic", 1.1, 0.0),          # 1 per step + 1 in init (ξ_{−1} = ξ(z_0)), over 10 steps
    ("past_extragradient", 1.1, 0.0),  # idem
    ("consensus", 1.0, 1.0),
    ({"name": "sga", "align": True}, 1.0, 2.0),
    ({"name": "sga", "align": False}, 1.0, 2.0),
])
def test_costs_per_step(rule, grads, hvps):
    runs, _ = simulate({"name": "dirac", "loss": "gan"}, rule, lr=0.1, steps=10, init=ONE)
    row = runs.iloc[0]
    assert row["grad_evals_per_step"] == pytest.approx(grads, rel=1e-12)
    assert row["hvps_per_step"] == pytest.approx(hvps, rel=1e-12)


@pytest.mark.parametrize(("rule", "key", "value"), [
    ("consensus", "gamma", -0.1), ("sga", "lam", -1.0), ("sga", "eps", -0.1),
    ("sga", "align", 1), ("consensus", "beta", 1.0),
])
def test_bad_parameters_are_rejected(rule, key, value):
    spec = {"name": "t", "game": "bilinear", "rules": [{"name": rule, key: value}],
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 5}
    with pytest.raises(StudyError, match=key):
        make_study(spec)


def _graph_step(game, cfg, z0, eta, create_graph):
    rule = _build(RULES, cfg["name"], [{k: v for k, v in cfg.items() if k != "name"}] * len(z0))
    ctx = _context(game, eta, len(z0), create_graph=create_graph)
    params = _to_params(game, z0, requires_grad=create_graph)
    state = rule.init(ctx, params)
    new, _ = rule.step(ctx, params, state)
    return params, _flat(new)


def _jacobian(params, out):
    """∂out/∂z0 per run (runs are independent, so summing over the run axis separates them)."""
    leaves = [v for named in params.values() for v in named.values()]
    rows = []
    for i in range(out.shape[1]):
        gs = torch.autograd.grad(out[:, i].sum(), leaves, retain_graph=True)
        rows.append(torch.cat([g.reshape(g.shape[0], -1) for g in gs], 1))
    return torch.stack(rows, 1).detach().numpy()


GRAPH_CASES = [
    {"name": "extragradient"}, {"name": "optimistic"}, {"name": "past_extragradient"},
    {"name": "consensus", "gamma": 0.7}, {"name": "sga", "lam": 0.8},
]


@pytest.mark.parametrize("cfg", GRAPH_CASES, ids=lambda c: c["name"])
def test_step_is_differentiable_with_create_graph_on_x_y(cfg):
    """On xy the Jacobian of step 0 w.r.t. z_0 is the rule's linear map: I − ηJ + η²J²
    (extragradient, and past extragradient whose z_{−½} = z_0), I − ηJ (optimistic: ξ_{−1} = Jz_0),
    I − η(J + wJᵀJ) (consensus γ = w, SGA λ = w). Values equal those of the plain step."""
    game, eta = _game("bilinear", dim=1), 0.3
    z0 = _random_points(3, 2, 11)
    params, out = _graph_step(game, cfg, z0, eta, create_graph=True)
    _, plain = _graph_step(game, cfg, z0, eta, create_graph=False)
    np.testing.assert_allclose(out.detach().numpy(), plain.numpy(), rtol=1e-13)
    _, _, J = _bilinear(np.eye(1))
    eye = np.eye(2)
    M = {"extragradient": eye - eta * J + eta**2 * J @ J,
         "past_extragradient": eye - eta * J + eta**2 * J @ J,
         "optimistic": eye - eta * J}.get(cfg["name"])
    if M is None:
        w = cfg.get("gamma", cfg.get("lam"))
        M = eye - eta * (J + w * J.T @ J)
    np.testing.assert_allclose(_jacobian(params, out), np.broadcast_to(M, (3, 2, 2)), atol=1e-13)


@pytest.mark.parametrize("cfg", GRAPH_CASES, ids=lambda c: c["name"])
def test_step_jacobian_on_the_dirac_gan_matches_finite_differences(cfg):
    """A nonlinear game: autograd through a create_graph step against central differences of the
    plain step (h = 1e-6), at three non-equilibrium points."""
    game, eta = _game("dirac", loss="gan"), 0.2
    z0 = _random_points(3, 2, 13)
    params, out = _graph_step(game, cfg, z0, eta, create_graph=True)
    h = 1e-6
    fd = np.stack([(_graph_step(game, cfg, z0 + h * e, eta, False)[1].numpy()
                    - _graph_step(game, cfg, z0 - h * e, eta, False)[1].numpy()) / (2 * h)
                   for e in np.eye(2)], 2)
    np.testing.assert_allclose(_jacobian(params, out), fd, atol=1e-7)
