"""Mixture-of-Gaussians games: mode metrics on known samplers, fit and dynamics labels, hand-computed
distances, the run-axis invariant for neural players, and every rule and regularizer on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import cdist

from gamedyn import fit, tables
from gamedyn.batch import run_batch
from gamedyn.costs import gan_losses
from gamedyn.errors import StudyError
from gamedyn.games import GAMES
from gamedyn.random import Streams
from gamedyn.regularizers import REGULARIZERS
from gamedyn.rules import RULES
from gamedyn.study import make_study

pytestmark = pytest.mark.usefixtures("one_thread")


P_CHI2_2_LE_9 = 1.0 - math.exp(-4.5)  # P(χ²₂ ≤ 9) ≈ 0.98889
SMALL = {"latent": 8, "gen_hidden": 16, "disc_hidden": 16, "batch": 64, "eval_samples": 200}


def build(name: str, **params):
    cls = GAMES.get(name)
    game = cls.build([cls.resolve(params, "game")], torch.float64)
    return game


def ring_sample(n_runs: int, n: int, modes=None, seed=0):
    game = build("mog_ring")
    rng = Streams(torch.arange(n_runs) + seed)
    x = game.sample_data(rng, n)
    if modes is not None:  # move every sample to the same offset around the given mode
        k = fit.nearest_modes(x, game._means)[0]
        x = x - game._means[k] + game._means[modes]
    return game, x


# --- acceptance: metrics on known samplers ---------------------------------------------------

def test_the_data_itself_scores_every_mode_and_high_quality_at_chi2_rate():
    game, x = ring_sample(8, 2500)
    m = fit.mode_metrics(x, game._means, game.sigma)
    assert (m["modes"] == 8).all()
    hq = m["high_quality"].numpy()
    se = math.sqrt(P_CHI2_2_LE_9 * (1 - P_CHI2_2_LE_9) / 2500)
    assert np.all(np.abs(hq - P_CHI2_2_LE_9) < 5 * se)                 # each run
    assert abs(hq.mean() - P_CHI2_2_LE_9) < 4 * se / math.sqrt(8)       # pooled over 20,000
    assert (m["kl"] < 0.01).all()
    labels = fit.fit_labels(m["modes"].numpy(), hq, m["kl"].numpy(), 8)
    assert (labels == "fit").all()


def test_a_one_mode_sampler_scores_one_mode_and_is_labelled_mode_collapse():
    game, x = ring_sample(4, 2500, modes=3)
    m = fit.mode_metrics(x, game._means, game.sigma)
    assert (m["modes"] == 1).all()
    assert torch.allclose(m["kl"], torch.full((4,), math.log(8), dtype=x.dtype))
    assert (m["hq_mass"][:, 3] == m["high_quality"]).all() and (m["hist"][:, 3] == 1).all()
    assert (m["high_quality"] > 0.97).all()
    labels = fit.fit_labels(m["modes"].numpy(), m["high_quality"].numpy(), m["kl"].numpy(), 8)
    assert (labels == "mode_collapse").all()


def test_the_game_labels_recorded_series_as_the_rule_says():
    game = build("mog_ring")
    steps = np.arange(0, 110, 10)
    T, R = len(steps), 3
    series = {"fit.modes": np.full((R, T), 8.0), "fit.high_quality": np.full((R, T), 0.9),
              "fit.kl": np.full((R, T), 0.01), "fit.energy": np.full((R, T), 0.05),
              "D.real": np.full((R, T), 0.5), "D.fake": np.full((R, T), 0.5)}
    series["fit.modes"][1], series["fit.kl"][1] = 1.0, math.log(8)          # collapsed
    series["fit.high_quality"][2] = 0.1                                      # poor samples
    for k in range(8):
        series[f"fit.mass[{k}]"] = np.full((R, T), 1 / 8)
    series["fit.mass[0]"][1] = 1.0
    for k in range(1, 8):
        series[f"fit.mass[{k}]"][1] = 0.0
    out = game.diagnose_fit(steps, series, np.full(R, T))
    assert out["fit"].tolist() == ["fit", "mode_collapse", "underfit"]
    assert out["dynamics"].tolist() == ["converged"] * 3
    assert out["modes"].tolist() == [8.0, 1.0, 8.0]


# --- hand computations -------------------------------------------------------------------------

def test_mode_metrics_on_a_hand_example():
    means = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[[0.01, 0.0], [0.2, 0.0], [0.99, 0.02], [0.9, 0.5]]], dtype=torch.float64)
    m = fit.mode_metrics(x, means, sigma=0.05)   # 3σ = 0.15: samples 0 and 2 are high quality
    assert m["high_quality"].item() == pytest.approx(0.5)
    assert m["modes"].item() == 2
    # nearest modes: 0, 0, 1, 1 → histogram (½, ½): KL to uniform 0
    assert m["kl"].item() == pytest.approx(0.0, abs=1e-15)
    assert m["hq_mass"].tolist() == [[0.25, 0.25]] and m["hist"].tolist() == [[0.5, 0.5]]
    x2 = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.9, 0.0]]], dtype=torch.float64)
    p = np.array([0.75, 0.25])
    assert fit.mode_metrics(x2, means, 0.05)["kl"].item() == pytest.approx((p * np.log(2 * p)).sum())


def test_energy_distance_matches_a_hand_computation_in_2d_and_scipy_in_1d():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 300, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 200, 2, generator=g, dtype=torch.float64) + 0.5
    e = fit.energy_distance(x, y)
    for r in range(3):
        a, b = x[r].numpy(), y[r].numpy()
        hand = math.sqrt(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())
        assert e[r].item() == pytest.approx(hand, rel=1e-9)
    x1, y1 = x[..., :1], y[..., :1]
    e1 = fit.energy_distance(x1, y1)
    for r in range(3):
        assert e1[r].item() == pytest.approx(stats.energy_distance(x1[r, :, 0], y1[r, :, 0]), rel=1e-9)
    assert fit.energy_distance(x, x).abs().max().item() < 1e-6


def test_w1_equals_scipy():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 500, generator=g, dtype=torch.float64)
    y = torch.rand(4, 500, generator=g, dtype=torch.float64)
    w = fit.wasserstein1(x, y)
    for r in range(4):
        assert w[r].item() == pytest.approx(stats.wasserstein_distance(x[r], y[r]), rel=1e-12)


def test_ring_modes_are_all_distinct_and_grid_means_are_the_standard_ones():
    ring = build("mog_ring").means()
    nearest = np.min(cdist(ring, ring) + 10 * np.eye(8))
    assert len(ring) == 8 and nearest == pytest.approx(4 * math.sin(math.pi / 8))  # 2r sin(π/8)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
    grid = build("mog_grid").means()
    assert sorted(set(grid[:, 0])) == [-4.0, -2.0, 0.0, 2.0, 4.0] and len({tuple(p) for p in grid}) == 25
    assert build("mog_1d").means().ravel().tolist() == [-2.0, 2.0]


def test_the_1d_data_scores_both_modes_and_w1_is_recorded():
    game = build("mog_1d", **SMALL)
    game.rng = Streams(torch.arange(2))
    x = game.sample_data(Streams(torch.arange(2)), 5000)
    m = fit.mode_metrics(x, game._means, game.sigma)
    assert (m["modes"] == 2).all()
    assert np.all(np.abs(m["high_quality"].numpy() - 0.9973) < 0.004)
    params = game.init_params([0, 1])
    assert {"fit.w1", "fit.energy", "fit.mass[1]"} <= set(game.metrics(params))


# --- dynamics labels ---------------------------------------------------------------------------

def test_mode_hopping_is_cycling_and_a_stopped_run_is_diverged():
    K, T = 8, 40
    steps = np.arange(T) * 50
    mass = np.zeros((4, T, K))
    mass[0, np.arange(T), np.arange(T) % K] = 1.0           # one mode at a time, rotating
    mass[1, :, :] = 1 / K                                    # all modes, still
    mass[2, :, 0] = 1.0
    mass[3, :, :] = 1 / K                                    # all modes, samples still tightening:
    energy = np.full((4, T), 0.2)
    energy[3] = 0.2 * np.exp(-np.arange(T) / 20)             # the distance halves in the window
    out = fit.sample_dynamics(steps, mass, np.array([T, T, 10, T]), np.array([False, False, True, False]),
                              energy=energy)
    assert out["dynamics"].tolist() == ["cycling", "converged", "diverged", "drifting"]
    assert out["energy_trend"][3] == pytest.approx(np.exp(-1.0))   # records 19…39
    assert out["mode_hopping"].tolist() == [True, False, False, False]
    assert out["modes_visited"][0] == 8 and out["modes_held"][0] == 1
    assert out["mode_turnover"][0] == pytest.approx(1.0)


# --- neural players ---------------------------------------------------------------------------

def test_softplus_activation_has_exact_derivatives_past_torchs_cutoff():
    """ζ(x) = log(1 + eˣ): ζ′ = σ(x), ζ″ = σ(x)σ(−x), also past |x| = 20 where F.softplus is the
    identity (its derivative there exactly 1, its second derivative 0)."""
    from scipy.special import expit

    from gamedyn.nets import ACTIVATIONS

    x = torch.tensor([-30.0, -21.0, 0.0, 21.0, 30.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ACTIVATIONS["softplus"](x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    s = expit(x.detach().numpy())
    np.testing.assert_allclose(g.detach().numpy(), s, rtol=1e-15, atol=0)
    np.testing.assert_allclose(h.numpy(), s * expit(-x.detach().numpy()), rtol=1e-15, atol=0)


@pytest.mark.parametrize("sizes, activation", [((5, 7, 6, 2), "relu"), ((1, 7, 1), "leaky_relu"),
                                               ((2, 9, 1), "tanh"), ((3, 8, 5, 1), "softplus")])
def test_batched_mlp_equals_per_run_modules_forward_and_backward(sizes, activation):
    from gamedyn.nets import MLP

    net = MLP(sizes, activation, 0.25, "orthogonal", 0.8)
    params = {k: v.requires_grad_() for k, v in net.init_params([3, 4, 5], 1, torch.float64).items()}
    x = torch.randn(3, 11, sizes[0], dtype=torch.float64)
    y = net(params, x)
    (y ** 2).sum().backward()
    for r in range(3):
        module = net.load_run(net.module().double(), {k: v.detach() for k, v in params.items()}, r)
        yr = module(x[r])
        torch.testing.assert_close(y[r], yr, rtol=1e-12, atol=1e-12)
        (yr ** 2).sum().backward()
        linears = [m for m in module if isinstance(m, torch.nn.Linear)]
        for i, lin in enumerate(linears):
            torch.testing.assert_close(params[f"w{i}"].grad[r], lin.weight.grad.T, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(params[f"b{i}"].grad[r], lin.bias.grad, rtol=1e-10, atol=1e-12)
    restacked = net.stack_runs([net.load_run(net.module().double(), params, r) for r in range(3)])
    assert all(torch.equal(restacked[k], params[k].detach()) for k in params)


@pytest.mark.parametrize("scheme", ["orthogonal", "xavier_uniform", "xavier_normal", "he_normal",
                                    "torch_default"])
def test_initialisation_is_per_seed_and_orthogonal_has_the_gain(scheme):
    from gamedyn.nets import MLP

    net = MLP((6, 4, 9), init=scheme, gain=0.8)
    a = net.init_params([7, 8, 7], 2, torch.float64)
    assert torch.equal(a["w0"][0], a["w0"][2]) and not torch.equal(a["w0"][0], a["w0"][1])
    assert torch.equal(net.init_params([8], 2, torch.float64)["w1"][0], a["w1"][1])
    assert not torch.equal(net.init_params([7], 1, torch.float64)["w0"][0], a["w0"][0])  # salt
    if scheme == "orthogonal":
        w0, w1 = a["w0"][0], a["w1"][0]           # [6, 4]: orthogonal columns; [4, 9]: rows
        torch.testing.assert_close(w0.T @ w0, 0.64 * torch.eye(4, dtype=torch.float64))
        torch.testing.assert_close(w1 @ w1.T, 0.64 * torch.eye(4, dtype=torch.float64))
        assert (a["b0"] == 0).all()


def small_spec(**extra):
    spec = {"name": "t", "game": {"name": "mog_ring", **SMALL, "plot_samples": 3}, "rules": ["simultaneous"],
            "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.5}, "steps": 12, "record_every": 3,
            "seeds": 8, "dtype": "float32"}
    return {**spec, **extra}


def by_run(traj):
    t = traj.assign(run_id=traj["run_id"].astype(str), variable=traj["variable"].astype(str))
    return t.sort_values(["run_id", "step", "variable"]).reset_index(drop=True)


@pytest.mark.parametrize("game, rule, threads", [
    ("mog_ring", "simultaneous", 1), ("mog_ring", {"name": "alternating", "disc_steps": 2}, 2),
    ("mog_ring", {"name": "unrolled", "k": 2}, 1), ("mog_1d", "simultaneous", 2)])
def test_a_neural_run_trained_in_a_batch_of_8_equals_it_trained_alone(game, rule, threads):
    """Bit for bit, parameters, losses, metrics and samples, on one thread or two."""
    torch.set_num_threads(threads)
    study = make_study(small_spec(rules=[rule], game={"name": game, **SMALL, "plot_samples": 3}))
    (batch,) = study.batches()
    together = by_run(run_batch(batch).trajectories)
    for run in (batch[0], batch[5]):
        alone = by_run(run_batch([run]).trajectories)
        mine = together[together["run_id"] == run.run_id].reset_index(drop=True)
        assert len(alone) == len(mine) > 0
        np.testing.assert_array_equal(mine["variable"], alone["variable"])
        np.testing.assert_array_equal(mine["value"], alone["value"])
    finals = together[(together["step"] == 12) & (together["variable"] == "norm.gen.w0")]["value"]
    assert finals.nunique() == 8   # each seed its own network and noise


def test_explicit_init_values_replace_the_games_own_initialisation():
    spec = small_spec(seeds=2, steps=1, record_every=1,
                      init={"disc": {"b1": [0.5]}})
    study = make_study(spec)
    from gamedyn.init import initial_params

    game = GAMES.get("mog_ring").build([r.config["game"] for r in study.runs], torch.float32)
    params = initial_params(game, [r.config["init"] for r in study.runs], [0, 1])
    assert (params["disc"]["b1"] == 0.5).all() and (params["disc"]["b0"] == 0).all()
    assert params["gen"]["w0"].shape == (2, 8, 16)


@pytest.mark.parametrize("name", ["mog_ring", "mog_grid", "mog_1d"])
def test_every_rule_runs_on_the_mixture_games(name):
    for rule in RULES.names():
        spec = small_spec(game={"name": name, **SMALL}, rules=[rule], steps=2, record_every=1, seeds=2)
        res = run_batch(make_study(spec).batches()[0])
        assert res.runs["stop_reason"].isna().all(), rule
        assert set(res.runs["fit"]) <= set(fit.FIT_LABELS)


@pytest.mark.parametrize("loss", ["gan", "wgan"])
def test_every_regularizer_runs_on_the_ring(loss):
    for reg in REGULARIZERS.names():
        cfg = {"name": reg, **({"nodes": 3} if reg == "instance_noise" else {})}
        spec = small_spec(game={"name": "mog_ring", "loss": loss, **SMALL}, regularizer=cfg, steps=2,
                          record_every=1, seeds=2)
        res = run_batch(make_study(spec).batches()[0])
        assert res.runs["stop_reason"].isna().all(), reg


@pytest.mark.parametrize("gen_cost", ["minimax", "non_saturating", "maximum_likelihood"])
def test_generator_costs_have_the_stated_gradients(gen_cost):
    """d/da of the per-sample generator cost: minimax −σ(a), non-saturating −(1 − σ(a)) = −σ(−a),
    maximum likelihood −exp(a) (Goodfellow 2014)."""
    a = torch.linspace(-3, 3, 7, dtype=torch.float64)[None].requires_grad_()
    w = torch.full((1, 7), 1 / 7, dtype=torch.float64)
    out = gan_losses("gan", torch.zeros_like(a), w, a, w, gen_cost)
    (g,) = torch.autograd.grad(out["gen"].sum(), a, retain_graph=True)
    expected = {"minimax": -torch.sigmoid(a), "non_saturating": -torch.sigmoid(-a),
                "maximum_likelihood": -torch.exp(a)}[gen_cost] / 7
    torch.testing.assert_close(g, expected.detach())
    (gd,) = torch.autograd.grad(out["disc"].sum(), a)
    torch.testing.assert_close(gd, torch.sigmoid(a).detach() / 7)


def test_generator_costs_that_do_not_apply_are_refused():
    with pytest.raises(StudyError, match="gen_cost"):
        make_study(small_spec(game={"name": "mog_ring", "loss": "wgan", "gen_cost": "minimax"}))
    with pytest.raises(StudyError, match="gen_cost"):
        make_study(small_spec(game={"name": "mog_ring", "loss": "nsgan", "gen_cost": "maximum_likelihood"}))


def test_fast_streams_are_normal_uniform_and_per_run():
    s = Streams(torch.arange(40))
    z = s.fast_normal(3001, dtype=torch.float64).numpy()
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01
    u = s.fast_uniform(3000, dtype=torch.float64).numpy()
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3 and 0 < u.min() and u.max() <= 1
    a, b = s.fast_normal(2000).numpy(), s.fast_normal(2000).numpy()
    for x, y in [(a, b), (a[:-1], a[1:]), (a[:, :1000], a[:, 1000:])]:
        assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.01
    together, alone = Streams(torch.tensor([5, 9, 2**40 + 1])), Streams(torch.tensor([2**40 + 1]))
    for _ in range(2):
        assert torch.equal(together.fast_normal(17, 3)[2], alone.fast_normal(17, 3)[0])


@pytest.mark.parametrize("name", ["mog_ring", "mog_grid"])
def test_the_study_files_run_shrunk_and_draw_their_figures(tmp_path, name):
    """The studies as shipped, with tiny networks and budgets (the full ones run from the CLI)."""
    import yaml

    from gamedyn import run_study
    from gamedyn.report import write_report
    from tests.conftest import ROOT

    spec = yaml.safe_load((ROOT / "studies" / f"{name}.yaml").read_text())
    study = make_study(spec)
    assert len(study.runs) >= 5 * 6 and spec["seeds"] >= 5
    assert {"simultaneous", "alternating", "unrolled"} <= {r.columns["rule"] for r in study.runs}
    spec["game"] = {**spec["game"], **SMALL, "plot_samples": 20}
    spec.update(seeds=2, steps=4, record_every=2)
    results = run_study(make_study(spec), out=tmp_path, jobs=1, progress=False)
    assert set(results.runs["fit"]) <= set(fit.FIT_LABELS)
    table = tables.rule_table(results.runs)
    assert len(table) == results.runs["rule_label"].nunique() and (table["runs"] == 2).all()
    paths = write_report(results)
    assert {p.name for p in paths} == {"mog_samples.png", "mog_table.png"}
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert (paths[0].parent / "mog_table.md").read_text().startswith("| rule | runs |")


def test_display_labels_spell_out_swept_defaults():
    import pandas as pd

    runs = pd.DataFrame({"rule": ["unrolled", "unrolled", "simultaneous"],
                         "rule_label": ["unrolled(k=0)", "unrolled", "simultaneous"],
                         "rule.k": [0.0, 5.0, float("nan")]})
    assert tables.display_labels(runs).tolist() == ["unrolled(k=0)", "unrolled(k=5)", "simultaneous"]
