"""Opponent shaping on general-sum games, checked against independent computations.

- the rules' directions (LookAhead, LOLA, SOS, LSS) against their formulas evaluated with dense
  autograd Jacobians and Hessians, one run at a time, on the IPD (10 parameters, general-sum) and
  matching pennies, with different hyperparameters per run;
- the IPD's loss against a numpy computation (a linear solve and a truncated discounted sum);
- closed forms derived by hand (in the comments): tandem's fields and fixed points as functions of
  α (LOLA's move off the game's fixed line, LookAhead's and SOS's do not), the linearisations at
  matching pennies' mixed equilibrium and at the quartic game's critical point (which repels every
  one of these rules);
- a run alone equals the same run in a batch, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gamedyn.errors import StudyError
from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.rules import RULES, Context
from gamedyn.study import make_study

from .conftest import build, series, simulate
from .test_contract import assert_alone_equals_in_batch

SHAPING = ("lookahead_opponent", "lola", "sos", "lss")
F64 = torch.float64


def setup(game: str, rule: str, rule_configs: list[dict], game_config: dict | None = None):
    """The game, the rule (one config per run) and a context with plain SGD of step 1 (so that
    θ − θ' is the rule's direction)."""
    R = len(rule_configs)
    g = build(GAMES, game, [game_config or {}] * R)
    r = build(RULES, rule, rule_configs)
    sgd = {p: build(OPTIMIZERS, "sgd", [{"lr": 1.0}] * R) for p in g.players}
    return g, r, Context(g, sgd)


def direction(rule, ctx: Context, params) -> torch.Tensor:
    """The rule's direction per run, flat ``[R, n]`` (player 1's coordinates, then player 2's)."""
    new, _ = rule.step(ctx, params, rule.init(ctx, params))
    flat = [params[p][k] - new[p][k] for p in params for k in params[p]]
    return torch.cat([f.reshape(f.shape[0], -1) for f in flat], 1)


def unflat(game, z: torch.Tensor):
    """Flat ``[R, n]`` → the game's params (player 1's then player 2's, in their shapes)."""
    out, i = {}, 0
    for p, named in game.shapes().items():
        out[p] = {}
        for k, shape in named.items():
            size = int(np.prod(shape))
            out[p][k] = z[:, i:i + size].reshape(z.shape[0], *shape)
            i += size
    return out


def dense(game, z: torch.Tensor, n1: int):
    """For one run (z ``[n]``): the gradients of L₁ and L₂ in all parameters and their Hessians,
    by ``torch.autograd.functional`` (dense, independent of the rules' Hessian-vector products)."""
    def loss(i: int):
        return lambda v: game.losses(unflat(game, v[None]))[game.players[i]][0]

    grads = [torch.autograd.functional.jacobian(loss(i), z) for i in range(2)]
    hess = [torch.autograd.functional.hessian(loss(i), z) for i in range(2)]
    return grads, hess


def reference(rule: str, game, z: torch.Tensor, n1: int, alpha: float = 0.0, a: float = 0.5,
              b: float = 0.1, damping: float = 1e-6, lookahead: bool = True
              ) -> tuple[np.ndarray, dict]:
    """The rule's direction at z (one run) from its definition with dense matrices (Letcher et al.
    2019's notation: ξ, H, H_o, χ)."""
    (g1, g2), (h1, h2) = dense(game, z, n1)
    s1, s2 = slice(0, n1), slice(n1, None)
    xi = torch.cat([g1[s1], g2[s2]])
    H = torch.cat([h1[s1, :], h2[s2, :]])            # rows ∂ξᵢ/∂θ
    Ho = H.clone()
    Ho[s1, s1] = 0
    Ho[s2, s2] = 0
    chi = torch.cat([h2[s2, s1].T @ g1[s2], h1[s1, s2].T @ g2[s1]])   # (∇ᵢξⱼ)ᵀ ∇ⱼLᵢ
    la = xi - alpha * Ho @ xi
    info = {}
    if rule == "lookahead_opponent":
        out = la
    elif rule == "lola":
        out = (la if lookahead else xi) - alpha * chi
    elif rule == "sos":
        dot = float(-alpha * chi @ la)
        p1 = 1.0 if dot >= 0 else min(1.0, -a * float(la @ la) / dot)
        nrm = float(xi.norm())
        p2 = nrm ** 2 if nrm < b else 1.0
        info = {"p1": p1, "p2": p2}
        out = la - min(p1, p2) * alpha * chi
    else:   # lss: ½(ξ + Hᵀv), (HᵀH + λI)v = Hᵀξ
        v = torch.linalg.solve(H.T @ H + damping * torch.eye(len(z), dtype=F64), H.T @ xi)
        out = (xi + H.T @ v) / 2
    return out.numpy(), info


# --- the IPD's loss -----------------------------------------------------------------------------

def ipd_numpy(t1: np.ndarray, t2: np.ndarray, gamma: float) -> tuple[float, float, float, float]:
    """(L₁, L₂) by a linear solve and by the discounted sum Σₜ γᵗ p Pᵗ r, in numpy."""
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c1, c2 = s(t1), s(t2)
    p = np.array([c1[0] * c2[0], c1[0] * (1 - c2[0]), (1 - c1[0]) * c2[0], (1 - c1[0]) * (1 - c2[0])])
    P = np.array([[c1[k] * c2[k], c1[k] * (1 - c2[k]), (1 - c1[k]) * c2[k], (1 - c1[k]) * (1 - c2[k])]
                  for k in range(1, 5)])
    r1 = np.array([-1.0, -3.0, 0.0, -2.0])        # [[−1, −3], [0, −2]] row by row
    r2 = np.array([-1.0, 0.0, -3.0, -2.0])        # its transpose
    x = np.linalg.solve((np.eye(4) - gamma * P).T, p)
    total, dist, series_ = np.zeros(2), p.copy(), []
    for t in range(3000):
        total += gamma ** t * np.array([dist @ r1, dist @ r2])
        dist = dist @ P
    series_ = -total
    return -x @ r1, -x @ r2, series_[0], series_[1]


def test_ipd_loss_matches_numpy_and_the_outcomes_average_1_and_2():
    rng = np.random.default_rng(0)
    gammas = [0.96, 0.96, 0.5, 0.9]
    thetas = rng.normal(size=(4, 2, 5)) * 2
    for gamma, (t1, t2) in zip(gammas, thetas):
        g = build(GAMES, "ipd", [{"gamma": gamma}])
        got = g.losses({"p1": {"logits": torch.tensor(t1)[None]},
                        "p2": {"logits": torch.tensor(t2)[None]}})
        l1, l2, s1, s2 = ipd_numpy(t1, t2, gamma)
        np.testing.assert_allclose([got["p1"].item(), got["p2"].item()], [l1, l2], rtol=1e-12)
        np.testing.assert_allclose([l1, l2], [s1, s2], rtol=1e-10)
    g = build(GAMES, "ipd", [{}])
    for logit, avg in ((40.0, 1.0), (-40.0, 2.0)):       # always cooperate / always defect
        full = torch.full((1, 5), logit, dtype=F64)
        got = g.losses({"p1": {"logits": full}, "p2": {"logits": full}})
        for v in got.values():
            assert (1 - 0.96) * v.item() == pytest.approx(avg, rel=1e-12)


# --- each rule against its dense definition -----------------------------------------------------

@pytest.mark.parametrize("rule", SHAPING)
def test_rule_directions_equal_their_dense_definitions_on_the_ipd(rule):
    """Six IPD runs at random points (two nearly cooperative, so that ‖ξ‖ is small), each with its
    own α (and a, b for SOS; λ for LSS), against the formula with dense Hessians. For SOS both of
    p's branches occur."""
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(6, 10)), dtype=F64)
    z[4:, :] = z[4:, :] * 0.2 + 4.0                      # near mutual cooperation: small field
    alphas = [1.0, 0.5, 2.0, 0.1, 1.0, 3.0]
    extra = {"sos": [{"a": a, "b": b} for a, b in zip([0.5, 0.1, 0.9, 0.5, 0.5, 0.3],
                                                        [0.1, 0.5, 0.9, 10.0, 0.5, 0.9])],
             "lss": [{"damping": d} for d in [1e-6, 1e-3, 0.1, 1e-6, 1e-4, 1.0]]}
    configs = [{"alpha": al} if rule != "lss" else {} for al in alphas]
    configs = [{**c, **e} for c, e in zip(configs, extra.get(rule, [{}] * 6))]
    game, r, ctx = setup("ipd", rule, configs)
    got = direction(r, ctx, unflat(game, z)).numpy()
    seen = set()
    for i in range(6):
        want, info = reference(rule, game, z[i], 5, alpha=configs[i].get("alpha", 0.0),
                               **{k: v for k, v in configs[i].items() if k != "alpha"})
        np.testing.assert_allclose(got[i], want, rtol=1e-7, atol=1e-10, err_msg=f"run {i}")
        if info:
            seen.add("p1" if info["p1"] < min(1.0, info["p2"]) else
                     "p2" if info["p2"] < 1.0 else "p=1")
    if rule == "sos":   # (p₁'s branch is checked on tandem, in closed form)
        assert {"p2", "p=1"} <= seen, seen


@pytest.mark.parametrize("rule", SHAPING)
def test_rule_directions_equal_their_dense_definitions_on_matching_pennies(rule):
    z = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, -0.1]], dtype=F64)
    configs = [{"alpha": al} for al in (1.0, 0.3, 2.0)] if rule != "lss" else [{}] * 3
    game, r, ctx = setup("matching_pennies", rule, configs)
    got = direction(r, ctx, unflat(game, z)).numpy()
    for i in range(3):
        want, _ = reference(rule, game, z[i], 1, alpha=configs[i].get("alpha", 0.0))
        np.testing.assert_allclose(got[i], want, rtol=1e-8, atol=1e-12)


def test_lola_without_lookahead_is_foersters_shaping_term_alone():
    """``lookahead: false``: ξ − αχ (Foerster et al. 2018), against the dense definition on the IPD
    (per-run α, mixed with runs that keep the term) and tandem's closed form (2u − 2) − 4αu, whose
    fixed points u = 1/(1 − 2α) the runs reach; two Hessian-vector products per step."""
    rng = np.random.default_rng(4)
    z = torch.tensor(rng.normal(size=(4, 10)), dtype=F64)
    configs = [{"alpha": al, "lookahead": False} for al in (1.0, 0.3, 2.0, 0.5)]
    game, r, ctx = setup("ipd", "lola", configs)
    got = direction(r, ctx, unflat(game, z)).numpy()
    for i, c in enumerate(configs):
        want, _ = reference("lola", game, z[i], 5, **c)
        np.testing.assert_allclose(got[i], want, rtol=1e-7, atol=1e-10, err_msg=f"run {i}")
        keep, _ = reference("lola", game, z[i], 5, alpha=c["alpha"])
        assert np.abs(keep - want).max() > 1e-3          # the dropped term matters here
    alphas = [0.05, 0.1, 0.15]
    runs, traj = simulate("tandem", {"name": "lola", "alpha": alphas, "lookahead": False}, lr=0.1,
                          init={"dist": "normal", "scale": 0.1}, steps=400, record_every=400,
                          seeds=2)
    last = traj[traj["step"] == 400].pivot(index="run_id", columns="variable", values="value")
    u = (last["p1.x"] + last["p2.y"]).reindex(runs["run_id"]).to_numpy()
    np.testing.assert_allclose(u, 1 / (1 - 2 * runs["rule.alpha"].to_numpy()), rtol=1e-9)
    assert (runs["hvps_per_step"] == 2).all()
    assert runs["rule_label"].str.endswith("lookahead=False)").all()


# --- tandem: closed forms -----------------------------------------------------------------------
# L₁ = (x+y)² − 2x, L₂ = (x+y)² − 2y; u = x + y, s = 2u − 2: ξ = (s, s), H = [[2, 2], [2, 2]],
# H_oξ = (2s, 2s), ∇_y L₁ = ∇_x L₂ = 2u and ∇_x ξ₂ = ∇_y ξ₁ = 2, so χ = (4u, 4u). Hence
# LA = (1 − 2α)s·(1, 1), LOLA = ((1 − 2α)s − 4αu)·(1, 1): LOLA's fixed points are
# u = (1 − 2α)/(1 − 4α), LA's (α ≠ ½) the game's line u = 1.

def test_tandem_directions_are_the_closed_forms():
    x = torch.tensor([0.3, -0.2, 1.5], dtype=F64)
    y = torch.tensor([0.1, 0.4, -2.0], dtype=F64)
    alphas = [0.1, 0.05, 0.2]
    u, s, al = (x + y).numpy(), (2 * (x + y) - 2).numpy(), np.array(alphas)
    params = {"p1": {"x": x}, "p2": {"y": y}}
    want = {"lookahead_opponent": (1 - 2 * al) * s, "lola": (1 - 2 * al) * s - 4 * al * u}
    for rule, w in want.items():
        game, r, ctx = setup("tandem", rule, [{"alpha": a} for a in alphas])
        got = direction(r, ctx, params).numpy()
        np.testing.assert_allclose(got, np.stack([w, w], 1), rtol=1e-12, atol=1e-14)


def test_sos_on_tandem_is_the_closed_form_in_each_branch_of_p():
    """ξ₀ = (1 − 2α)s·(1, 1), αχ = 4αu·(1, 1): ⟨−αχ, ξ₀⟩ = −8α(1 − 2α)us, negative iff us > 0 (α < ½),
    then p₁ = min(1, −a‖ξ₀‖²/⟨−αχ, ξ₀⟩) = min(1, a(1 − 2α)s/(4αu)); ‖ξ‖ = √2|s|, p₂ = 2s² when
    √2|s| < b. SOS = ((1 − 2α)s − min(p₁, p₂)·4αu)·(1, 1). The points: u = 1.2 (p = p₁ = ⅓),
    u = 1.02 (p = p₂ = 0.0032), u = 0.5 (us < 0: p = 1, LOLA), u = −0.5 (p₁ capped at 1)."""
    al, a, b = 0.1, 0.5, 0.1
    u = np.array([1.2, 1.02, 0.5, -0.5])
    s = 2 * u - 2
    p1 = np.where(u * s > 0, np.minimum(1, a * (1 - 2 * al) * s / (4 * al * u)), 1.0)
    p2 = np.where(np.sqrt(2) * np.abs(s) < b, 2 * s ** 2, 1.0)
    p = np.minimum(p1, p2)
    np.testing.assert_allclose(p, [1 / 3, 0.0032, 1.0, 1.0], rtol=1e-12)
    want = (1 - 2 * al) * s - p * 4 * al * u
    x = torch.tensor([0.7, 0.3, -0.25, 0.5], dtype=F64)
    params = {"p1": {"x": x}, "p2": {"y": torch.tensor(u, dtype=F64) - x}}
    game, r, ctx = setup("tandem", "sos", [{"alpha": al, "a": a, "b": b}] * 4)
    got = direction(r, ctx, params).numpy()
    np.testing.assert_allclose(got, np.stack([want, want], 1), rtol=1e-12, atol=1e-14)


def test_lola_moves_tandems_fixed_points_with_alpha_while_la_sos_and_lss_keep_the_line():
    alphas = [0.05, 0.1, 0.15]
    init = {"dist": "normal", "scale": 0.1}
    ends = {}
    for rule in SHAPING:
        cfg = {"name": rule, "alpha": alphas} if rule != "lss" else rule
        runs, traj = simulate("tandem", cfg, lr=0.1, init=init, steps=400, record_every=400, seeds=2)
        last = traj[traj["step"] == 400].pivot(index="run_id", columns="variable", values="value")
        u = (last["p1.x"] + last["p2.y"]).reindex(runs["run_id"]).to_numpy()
        ends[rule] = (runs.get("rule.alpha", np.nan), u)
    al, u = ends["lola"]
    np.testing.assert_allclose(u, (1 - 2 * al) / (1 - 4 * al), rtol=1e-9)
    assert np.all(np.abs(u - 1) > 0.05)
    for rule in ("lookahead_opponent", "sos", "lss"):
        np.testing.assert_allclose(ends[rule][1], 1.0, atol=1e-9, err_msg=rule)


def test_tandem_costs_per_step():
    """LA: 1 field evaluation and 2 Hessian-vector products (H_oξ, one per player); LOLA and SOS: 4
    (χ too); LSS: Hᵀξ, one CG iteration (Hᵀξ lies in H's range, an eigenvector of HᵀH: CG
    stops after one iteration, 2 products) and Hᵀv: 4."""
    want = {"lookahead_opponent": 2, "lola": 4, "sos": 4, "lss": 4}
    for rule, hvps in want.items():
        runs, _ = simulate("tandem", rule, steps=5, record_every=5,
                           init={"dist": "normal", "scale": 0.1}, seeds=2)
        assert (runs["grad_evals_per_step"] == 1).all(), rule
        assert (runs["hvps_per_step"] == hvps).all(), rule


# --- linearisations at matching pennies' equilibrium and the quartic game's critical point -------

def step_jacobian(game_name: str, rule: str, config: dict, lr: float) -> np.ndarray:
    """∂z'/∂z of one SGD step (learning rate ``lr``) of ``rule`` at the origin, by autograd through
    the step (one run)."""
    game = build(GAMES, game_name, [{}])
    r = build(RULES, rule, [config])
    ctx = Context(game, {p: build(OPTIMIZERS, "sgd", [{"lr": lr}]) for p in game.players},
                  create_graph=True)

    def f(z):
        params = unflat(game, z[None])
        new, _ = r.step(ctx, params, r.init(ctx, params))
        return torch.cat([new[p][k].reshape(1) for p in new for k in new[p]])

    return torch.autograd.functional.jacobian(f, torch.zeros(2, dtype=F64)).numpy()


I2 = np.eye(2)
ROT = np.array([[0.0, 1.0], [-1.0, 0.0]])


def test_linearisations_at_matching_pennies_equilibrium():
    """At logits (0, 0): σ' = ¼, σ'' = 0, so ξ ≈ (y/4, −x/4), H = ROT/4 = H_o, H² = −I/16;
    ∇_y L₁ ≈ x/4, ∇_x L₂ ≈ −y/4, so χ ≈ (−x/16, −y/16). Fields: LA = H + (α/16)I,
    LOLA = H + (α/8)I, SOS = LA (p ≤ ‖ξ‖² → 0), LSS = ½(H + Hᵀ) = 0. With η = α = 1: LA and LOLA
    contract (moduli² 241/256 and 53/64), simultaneous play expands (17/16). LSS with its damping λ
    (the default 10⁻⁶): HᵀH = I/16, so ½(H + Hᵀ(HᵀH + λI)⁻¹HᵀH) = ½(H + κHᵀ) = (1 − κ)/8·ROT with
    κ = 1/(1 + 16λ): a rotation of rate 2·10⁻⁶, modulus² 1 + ((1 − κ)/8)² (λ = 0: the identity)."""
    lr = al = 1.0
    H = ROT / 4
    kappa = 1 / (1 + 16e-6)
    want = {"simultaneous": I2 - lr * H,
            "lookahead_opponent": I2 - lr * (H + al / 16 * I2),
            "lola": I2 - lr * (H + al / 8 * I2),
            "sos": I2 - lr * (H + al / 16 * I2),
            "lss": I2 - lr * (1 - kappa) / 8 * ROT}
    radius = {"simultaneous": np.sqrt(17 / 16), "lookahead_opponent": np.sqrt(241 / 256),
              "lola": np.sqrt(53 / 64), "sos": np.sqrt(241 / 256),
              "lss": np.sqrt(1 + ((1 - kappa) / 8) ** 2)}
    for rule, w in want.items():
        cfg = {"alpha": al} if rule in ("lookahead_opponent", "lola", "sos") else {}
        got = step_jacobian("matching_pennies", rule, cfg, lr)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14, err_msg=rule)
        assert np.abs(np.linalg.eigvals(got)).max() == pytest.approx(radius[rule], rel=1e-12)


def test_the_quartic_games_only_critical_point_repels_every_rule():
    """ξ = (y − x + x³, −x − y + y³): ξ₁ = 0 gives y = x − x³, then ξ₂ = 0 is
    2x − x³ − (x − x³)³ = 0, whose only real root is 0 (numpy's roots of the degree-9 polynomial).
    At 0, H = −I + ROT; H_o = ROT; ROT·H = −I − ROT and χ ≈ (−I − ROT)z, so the linearised fields
    are GD: −I + ROT, LA = SOS: (α − 1)I + (1 + α)ROT, LOLA: (2α − 1)I + (1 + 2α)ROT,
    LSS (λ = 0, H is invertible there): ½(H + Hᵀ) = −I: every real part is negative for α < ½,
    and one step I − ηF has spectral radius > 1 (the critical point repels)."""
    x = np.polynomial.Polynomial([0, 1])
    poly = 2 * x - x ** 3 - (x - x ** 3) ** 3
    roots = poly.roots()
    real = roots[np.abs(roots.imag) < 1e-9].real
    np.testing.assert_allclose(real, [0.0], atol=1e-9)
    game = build(GAMES, "zerosum_quartic", [{}])
    (g1, g2), (h1, h2) = dense(game, torch.zeros(2, dtype=F64), 1)
    np.testing.assert_allclose(torch.stack([h1[0], h2[1]]).numpy(), -I2 + ROT, atol=1e-15)

    lr, al = 0.01, 0.01
    fields = {"simultaneous": -I2 + ROT,
              "lookahead_opponent": (al - 1) * I2 + (1 + al) * ROT,
              "sos": (al - 1) * I2 + (1 + al) * ROT,
              "lola": (2 * al - 1) * I2 + (1 + 2 * al) * ROT,
              "lss": -I2}
    for rule, field in fields.items():
        cfg = {"alpha": al} if rule in ("lookahead_opponent", "lola", "sos") else {}
        cfg = {"damping": 0.0} if rule == "lss" else cfg
        got = step_jacobian("zerosum_quartic", rule, cfg, lr)
        np.testing.assert_allclose(got, I2 - lr * field, rtol=1e-12, atol=1e-14, err_msg=rule)
        assert np.abs(np.linalg.eigvals(got)).max() > 1, rule


def test_on_the_quartic_game_runs_leave_the_critical_point_for_a_cycle_or_lss_spurious_point():
    """From (0.01, 0.01), simultaneous play, LA, LOLA and SOS leave the critical point (distance ×
    10 at least), stay bounded (< 3) and are labelled cycling: the cycle of Letcher 2021. LSS
    instead settles at (1/√3, 1/√3), a point that is not critical: there H = [[3x² − 1, 1],
    [−1, 3y² − 1]] = ROT is antisymmetric, so HᵀH⁻¹ = ROTᵀROT⁻¹ = −I and ½(I + HᵀH⁻¹)ξ = 0 while
    ξ = (x³, −2x + x³) ≠ 0: LSS's spurious fixed points are where H's symmetric part vanishes."""
    init = {"dist": "constant", "scale": 0.01}
    for rule in ("simultaneous", "lookahead_opponent", "lola", "sos"):
        cfg = {"name": rule, "alpha": 0.1} if rule != "simultaneous" else rule
        runs, traj = simulate("zerosum_quartic", cfg, lr=0.1, steps=300, record_every=10, init=init)
        d = series(traj, "distance")
        assert d[-1] > 10 * d[0] and np.nanmax(d) < 3, (rule, d[0], d[-1], np.nanmax(d))
        assert runs["dynamics"].iloc[0] == "cycling", rule
    runs, traj = simulate("zerosum_quartic", "lss", lr=0.1, steps=300, record_every=300, init=init)
    x, y = series(traj, "p1.x")[-1], series(traj, "p2.y")[-1]
    np.testing.assert_allclose([x, y], [3 ** -0.5, 3 ** -0.5], atol=1e-5)
    game, r, ctx = setup("zerosum_quartic", "lss", [{"damping": 0.0}])
    point = torch.tensor([[3 ** -0.5, 3 ** -0.5]], dtype=F64)
    np.testing.assert_allclose(direction(r, ctx, unflat(game, point)).numpy(), 0.0, atol=1e-15)
    xi = ctx.grad(unflat(game, point))
    np.testing.assert_allclose([xi["p1"]["x"].item(), xi["p2"]["y"].item()],
                               [3 ** -1.5, -2 * 3 ** -0.5 + 3 ** -1.5], rtol=1e-14)


# --- batches, validation ------------------------------------------------------------------------

@pytest.mark.invariance
@pytest.mark.parametrize("rule", SHAPING)
def test_a_run_alone_equals_the_same_run_in_a_batch_on_the_ipd(rule):
    rule_cfg = {"name": rule, "alpha": [1.0, 0.5]} if rule != "lss" else \
        {"name": rule, "damping": [1e-6, 1e-3]}
    study = make_study({"name": "ipd", "game": "ipd", "rules": [rule_cfg],
                        "optimizer": {"name": "sgd", "lr": [1.0, 0.3]}, "seeds": 2, "steps": 3,
                        "record_every": 1})
    (batch,) = study.batches()
    assert len(batch) == 8
    assert_alone_equals_in_batch(study, batch, 5)


def test_bad_hyperparameters_are_refused_with_the_key_and_the_accepted_values():
    base = {"name": "t", "game": "tandem", "optimizer": {"name": "sgd"}, "steps": 1}
    with pytest.raises(StudyError, match=r"rules\[0\]\.a.*1\.5.*> 0 and < 1"):
        make_study({**base, "rules": [{"name": "sos", "a": 1.5}]})
    with pytest.raises(StudyError, match=r"rules\[0\]\.alpha.*-0\.1.*>= 0"):
        make_study({**base, "rules": [{"name": "lola", "alpha": -0.1}]})
    with pytest.raises(StudyError, match=r"game\.gamma.*1\.0.*< 1"):
        make_study({**base, "game": {"name": "ipd", "gamma": 1.0}, "rules": ["lola"]})
