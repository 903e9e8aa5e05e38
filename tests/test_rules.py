"""Simultaneous and alternating play, and SGD, against closed forms and hand-computed steps."""

import math

import numpy as np
import pytest

from .conftest import series, simulate

ONE = {"dist": "constant", "scale": 1.0}


@pytest.mark.parametrize(("lr", "steps"), [(0.05, 600), (0.1, 400), (0.3, 200)])
def test_simultaneous_bilinear_spirals_out_at_sqrt_1_plus_eta2(lr, steps):
    runs, traj = simulate("bilinear", "simultaneous", lr=lr, steps=steps, init=ONE)
    d = series(traj, "distance")
    k = np.arange(steps + 1)
    np.testing.assert_allclose(d, math.sqrt(2) * (1 + lr**2) ** (k / 2), rtol=1e-10)
    row = runs.iloc[0]
    assert row["dynamics"] == "diverged"
    assert row["growth_rate"] == pytest.approx(math.log(math.sqrt(1 + lr**2)), rel=1e-6)


@pytest.mark.parametrize("lr", [0.1, 0.5, 1.5])
def test_alternating_bilinear_conserves_x2_minus_eta_xy_plus_y2_and_cycles(lr):
    runs, traj = simulate("bilinear", {"name": "alternating", "first": "gen"}, lr=lr,
                          steps=600, init={"dist": "normal", "scale": 1.0}, seeds=[3])
    x, y = series(traj, "gen.x[0]"), series(traj, "disc.y[0]")
    q = x**2 - lr * x * y + y**2
    np.testing.assert_allclose(q, q[0], rtol=1e-11)
    row = runs.iloc[0]
    assert row["dynamics"] == "cycling"
    assert row["period"] == pytest.approx(2 * math.pi / math.acos(1 - lr**2 / 2), rel=0.01)


def test_alternating_round_by_hand():
    """disc first, 5 disc steps then 1 gen step, from (x, y) = (1, 2), η = 0.1, on x·y."""
    eta, x, y = 0.1, 1.0, 2.0
    for _ in range(5):
        y = y + eta * x          # disc ascends xy: ∂y = x
    x = x - eta * y              # gen descends xy: ∂x = y
    _, traj = simulate("bilinear", {"name": "alternating", "disc_steps": 5}, lr=eta, steps=1,
                       init={"gen": {"x": 1.0}, "disc": {"y": 2.0}})
    assert series(traj, "gen.x[0]")[-1] == pytest.approx(x, rel=1e-14)
    assert series(traj, "disc.y[0]")[-1] == pytest.approx(y, rel=1e-14)


def test_gradient_evaluations_are_counted_per_step():
    sim, _ = simulate("bilinear", "simultaneous", steps=10)
    alt, _ = simulate("bilinear", {"name": "alternating", "disc_steps": 5, "gen_steps": 2}, steps=10)
    assert sim.iloc[0]["grad_evals_per_step"] == 1
    assert alt.iloc[0]["grad_evals_per_step"] == 7


def test_sgd_momentum_is_heavy_ball_including_negative():
    """p_{k+1} = p_k − η g_k + β (p_k − p_{k−1}), p_{−1} = p_0, written out independently."""
    eta, beta, steps = 0.2, -0.4, 6
    z = np.array([1.0, 0.5])            # (x, y)
    prev = z.copy()
    expected = [z.copy()]
    for _ in range(steps):
        g = np.array([z[1], -z[0]])     # simultaneous field of x·y
        z, prev = z - eta * g + beta * (z - prev), z
        expected.append(z.copy())
    expected = np.array(expected)
    _, traj = simulate("bilinear", "simultaneous", lr=eta, steps=steps,
                       init={"gen": {"x": 1.0}, "disc": {"y": 0.5}},
                       optimizer={"name": "sgd", "lr": eta, "momentum": beta})
    np.testing.assert_allclose(series(traj, "gen.x[0]"), expected[:, 0], rtol=1e-13)
    np.testing.assert_allclose(series(traj, "disc.y[0]"), expected[:, 1], rtol=1e-13)


def test_per_player_learning_rates():
    _, traj = simulate("bilinear", "simultaneous", steps=1,
                       init={"gen": {"x": 1.0}, "disc": {"y": 1.0}},
                       optimizer={"name": "sgd", "lr": 0.1, "disc": {"lr": 0.3}})
    assert series(traj, "gen.x[0]")[-1] == pytest.approx(1 - 0.1 * 1.0)
    assert series(traj, "disc.y[0]")[-1] == pytest.approx(1 + 0.3 * 1.0)


def test_dirac_gan_simultaneous_moves_away_at_every_step():
    runs, traj = simulate({"name": "dirac", "loss": "gan"}, "simultaneous", lr=0.2, steps=500, init=ONE)
    d = series(traj, "distance")
    assert len(d) == 501
    assert np.all(np.diff(d) > 0)


def test_dirac_gan_alternating_stays_bounded_and_cycles():
    runs, traj = simulate({"name": "dirac", "loss": "gan"}, {"name": "alternating", "first": "gen"},
                          lr=0.2, steps=500, init=ONE)
    d = series(traj, "distance")
    assert d.min() > 0.5 and d.max() < 3.0
    assert runs.iloc[0]["dynamics"] == "cycling"


def test_blowup_stops_a_run_at_the_closed_form_step():
    """‖z_k‖ = √2·1.09^{k/2} first exceeds 10⁶·√2 at k = ⌈2 ln 10⁶ / ln 1.09⌉ = 321."""
    runs, traj = simulate("bilinear", "simultaneous", lr=0.3, steps=1000, init=ONE)
    row = runs.iloc[0]
    k = math.ceil(2 * math.log(1e6) / math.log(1.09))
    assert (row["dynamics"], row["stop_reason"], row["stopped_step"]) == ("diverged", "blowup", k)
    assert traj["step"].max() == k - 1  # the blown-up record itself is dropped


def test_nonfinite_run_ends_cleanly_and_leaves_its_batch_mates_alone():
    init = {"dist": "normal", "scale": 1.0}
    both, traj = simulate({"name": "dirac", "loss": "wgan"}, "simultaneous", lr=[1e10, 0.1], steps=60,
                          init=init, diagnose={"blowup": 1e300})
    assert len(set(both["batch_id"])) == 1
    wild = both[both["optimizer.lr"] == 1e10].iloc[0]
    tame = both[both["optimizer.lr"] == 0.1].iloc[0]
    assert wild["stop_reason"] == "nonfinite" and wild["dynamics"] == "diverged"
    assert np.isfinite(traj["value"]).all()
    alone, traj_alone = simulate({"name": "dirac", "loss": "wgan"}, "simultaneous", lr=0.1, steps=60,
                                 init=init, diagnose={"blowup": 1e300})
    assert alone.iloc[0]["run_id"] == tame["run_id"]
    np.testing.assert_array_equal(series(traj, "gen.theta", tame["run_id"]),
                                  series(traj_alone, "gen.theta"))


# --- capabilities: declared by rules and optimizers, checked when a study is loaded ---------------

@pytest.fixture
def registered():
    """Register throwaway components for one test and remove them after (registry-wide tests must
    not see them)."""
    from gamedyn.optim import OPTIMIZERS
    from gamedyn.rules import RULES

    added = []

    def register(registry, name, cls):
        registry.register(name)(cls)
        added.append((registry, name))
        return cls

    yield register
    for registry, name in added:
        registry._classes.pop(name)
    assert not {n for _, n in added} & (set(RULES.names()) | set(OPTIMIZERS.names()))


ONE_PLAYER = {"name": "gan1d", "discriminator": "optimal", "nodes": 64}


def test_a_rule_needing_both_players_without_fallback_is_rejected_at_load(registered):
    from gamedyn.errors import StudyError
    from gamedyn.rules import RULES, Rule
    from gamedyn.rules.simultaneous import Simultaneous
    from gamedyn.study import make_study

    class Coupled(Simultaneous):
        needs = ("gen", "disc")

    class Anything(Rule):
        params = {}

    registered(RULES, "coupled_for_test", Coupled)
    spec = {"name": "t", "game": ONE_PLAYER, "rules": ["coupled_for_test"],
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 2}
    with pytest.raises(StudyError, match="coupled_for_test.*needs the player.*disc") as e:
        make_study(spec)
    assert "\n" not in str(e.value)
    make_study({**spec, "game": "bilinear"})          # both players: accepted
    assert Anything.needs == () and Anything.fallback is None


@pytest.mark.parametrize("rule", ["cgd", {"name": "unrolled", "k": 3}, "best_response"])
def test_rules_needing_both_players_declare_simultaneous_play_as_their_fallback(rule):
    """Declared, not switched on inside each rule: on a game without ``disc`` the fallback
    (simultaneous play) steps, ``init`` included, costs too."""
    from gamedyn.rules import RULES

    name = rule if isinstance(rule, str) else rule["name"]
    cls = RULES.get(name)
    assert cls.needs == ("gen", "disc") and cls.fallback == "simultaneous"
    init = {"dist": "normal", "scale": 0.5}
    runs, traj = simulate(ONE_PLAYER, rule, lr=0.05, steps=5, init=init, seeds=[3])
    runs_s, ref = simulate(ONE_PLAYER, "simultaneous", lr=0.05, steps=5, init=init, seeds=[3])
    for v in ("gen.mu", "gen.log_sigma"):
        np.testing.assert_array_equal(series(traj, v), series(ref, v))
    assert runs.iloc[0]["grad_evals"] == runs_s.iloc[0]["grad_evals"] == 5


def test_cgd_needs_a_declared_learning_rate_unless_eta_is_set(registered):
    from gamedyn.errors import StudyError
    from gamedyn.optim import OPTIMIZERS
    from gamedyn.optim.sgd import SGD
    from gamedyn.study import make_study

    class NoLR(SGD):
        """SGD that does not say which hyperparameter is its step size."""
        learning_rate = None

    registered(OPTIMIZERS, "nolr_for_test", NoLR)
    spec = {"name": "t", "game": "bilinear", "rules": ["cgd"], "steps": 2,
            "optimizer": {"name": "sgd", "lr": 0.1, "disc": {"name": "nolr_for_test"}}}
    with pytest.raises(StudyError, match="disc's optimizer 'nolr_for_test' declares no learning rate"):
        make_study(spec)
    make_study({**spec, "rules": [{"name": "cgd", "eta": 0.1}]})     # η given: accepted
    make_study({**spec, "rules": ["simultaneous"]})                  # needs no η: accepted


def test_only_optimizers_declaring_linearisable_are_analysed():
    from gamedyn import stability
    from gamedyn.optim import OPTIMIZERS

    declared = {n for n in OPTIMIZERS.names() if OPTIMIZERS.get(n).linearisable}
    assert declared == {"sgd"}
    assert {n: OPTIMIZERS.get(n).learning_rate for n in ("sgd", "adam", "rmsprop")} == \
        {"sgd": "lr", "adam": "lr", "rmsprop": "lr"}
    assert not hasattr(stability, "SGD_FAMILY")
    runs, _ = simulate("bilinear", "simultaneous", steps=5, optimizer={"name": "rmsprop", "lr": 0.01})
    assert np.isnan(runs.iloc[0]["predicted_radius"])
