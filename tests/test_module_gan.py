"""The ``module_gan`` game: the user's nn.Modules as players over the run axis, on real data.

Checked against independent computations: plain modules built with ``torch.manual_seed`` and
differentiated with autograd one run at a time; the losses' gradients in closed form; the digits as
scikit-learn ships them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gamedyn import costs
from gamedyn.batch import run_batch
from gamedyn.errors import StudyError
from gamedyn.games import GAMES
from gamedyn.modules import torch_seed
from gamedyn.random import Streams
from gamedyn.study import load_study, make_study
from tests.conftest import ROOT

NETS = str(ROOT / "studies" / "plugins" / "digits_mlp.py")
TINY = {"generator": {"module": NETS, "class": "Generator", "kwargs": {"latent": 4, "hidden": 8}},
        "discriminator": {"module": NETS, "class": "Discriminator", "kwargs": {"hidden": 8}},
        "latent": {"dim": 4}, "batch": 8, "eval_samples": 16}


pytestmark = pytest.mark.usefixtures("one_thread")


def spec(game=None, **extra):
    out = {"name": "t", "game": {"name": "module_gan", **TINY, **(game or {})}, "rules": ["simultaneous"],
           "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.5}, "steps": 6, "record_every": 2,
           "seeds": 8, "dtype": "float32"}
    return {**out, **extra}


def build(dtype=torch.float64, **game):
    cls = GAMES.get("module_gan")
    return cls.build([cls.resolve({**TINY, **game}, "game")], dtype)


def nets_module():
    from gamedyn import plugins

    return plugins.module(NETS)


# --- players over the run axis --------------------------------------------------------------

def test_each_runs_initial_weights_are_its_modules_own_initialisation_under_its_seed():
    game = build()
    params = game.init_params([5, 9, 5])
    mod = nets_module()
    for r, seed in enumerate([5, 9, 5]):
        torch.manual_seed(torch_seed(seed, 1))
        g = mod.Generator(latent=4, hidden=8).double()
        torch.manual_seed(torch_seed(seed, 2))
        d = mod.Discriminator(hidden=8).double()
        for player, net in (("gen", g), ("disc", d)):
            for name, p in net.named_parameters():
                assert torch.equal(params[player][name][r], p.detach()), (player, name)
    assert not torch.equal(params["gen"]["net.0.weight"][0], params["gen"]["net.0.weight"][1])


@pytest.mark.parametrize("loss", ["non_saturating", "relativistic"])
def test_the_vmapped_field_equals_per_run_autograd_on_plain_modules(loss):
    """Both players' gradients, all runs at once through torch.func, against each run's own plain
    nn.Modules (built independently) and losses written out with F.softplus."""
    import torch.nn.functional as F

    game = build(loss=loss)
    seeds = [0, 1, 2]
    params = {p: {k: v.requires_grad_() for k, v in named.items()}
              for p, named in game.init_params(seeds).items()}
    g = torch.Generator().manual_seed(0)
    xr = torch.rand(3, 8, 64, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(3, 8, 4, generator=g, dtype=torch.float64)
    w = torch.full((3, 8), 1 / 8, dtype=torch.float64)
    losses = game.objective(params, (xr, w), (game.generate(params, z), w))
    grads = {p: torch.autograd.grad(losses[p].sum(), list(params[p].values()), retain_graph=True)
             for p in ("gen", "disc")}
    mod = nets_module()
    for r, seed in enumerate(seeds):
        torch.manual_seed(torch_seed(seed, 1))
        G = mod.Generator(latent=4, hidden=8).double()
        torch.manual_seed(torch_seed(seed, 2))
        D = mod.Discriminator(hidden=8).double()
        a_real = D(xr[r].view(8, 1, 8, 8))[:, 0]
        a_fake = D(G(z[r]))[:, 0]
        if loss == "non_saturating":
            mine = {"gen": F.softplus(-a_fake).mean(),
                    "disc": F.softplus(-a_real).mean() + F.softplus(a_fake).mean()}
        else:
            mine = {"gen": F.softplus(a_real - a_fake).mean(), "disc": F.softplus(a_fake - a_real).mean()}
        for p, net in (("gen", G), ("disc", D)):
            torch.testing.assert_close(losses[p][r], mine[p], rtol=1e-12, atol=1e-12)
            expected = torch.autograd.grad(mine[p], list(net.parameters()), retain_graph=True)
            for got, want in zip(grads[p], expected):
                torch.testing.assert_close(got[r], want, rtol=1e-10, atol=1e-12)


def assert_alone_as_in_batch(batch, picks: tuple[int, ...] = (0, 5), columns: tuple[str, ...] = ()):
    """Runs ``batch[i]`` (i in ``picks``) stepped alone have the trajectories (and the runs-table
    ``columns``) they have in ``batch``, bit for bit; returns the batch's result."""
    together = run_batch(batch)
    traj = together.trajectories
    for i in picks:
        run = batch[i]
        alone = run_batch([run])
        for c in columns:
            assert alone.runs[c].iloc[0] == together.runs[c].iloc[i], c
        mine = traj[traj["run_id"] == run.run_id]
        a = alone.trajectories.sort_values(["step", "variable"]).reset_index(drop=True)
        m = mine.sort_values(["step", "variable"]).reset_index(drop=True)
        assert len(a) == len(m) > 0
        np.testing.assert_array_equal(a["variable"].astype(str), m["variable"].astype(str))
        np.testing.assert_array_equal(a["value"], m["value"])
    return together


@pytest.mark.invariance
@pytest.mark.parametrize("rule", ["simultaneous", {"name": "unrolled", "k": 2}])
def test_a_run_alone_equals_it_in_a_batch_of_8(rule):
    """Bit for bit: parameters' norms, losses, gradient norms and metrics."""
    study = make_study(spec(rules=[rule]))
    (batch,) = study.batches()
    together = assert_alone_as_in_batch(batch).trajectories
    variables = set(together["variable"].astype(str))
    assert {"fit.frechet", "fit.frechet_pixels", "fit.class_kl"} <= variables
    finals = together[(together["step"] == 6) & (together["variable"] == "norm.gen.net.0.weight")]
    assert finals["value"].nunique() == 8


RULES_UNDER_TEST = ["simultaneous", "alternating", "extragradient", "optimistic", "consensus", "sga",
                    "cgd", {"name": "unrolled", "k": 2}, {"name": "best_response", "max_inner": 2}]


@pytest.mark.parametrize("rule", RULES_UNDER_TEST, ids=lambda r: r if isinstance(r, str) else r["name"])
def test_every_rule_steps_module_players(rule):
    res = run_batch(make_study(spec(rules=[rule], seeds=2, steps=2, record_every=1,
                                    optimizer={"name": "sgd", "lr": 0.01})).batches()[0])
    assert res.runs["stop_reason"].isna().all()
    assert np.isfinite(res.trajectories["value"]).all()
    assert (res.runs["steps_done"] == 2).all()


@pytest.mark.parametrize("loss, regularizer", [("minimax", "r1"), ("maximum_likelihood", "none"),
                                               ("wgan", "wgan_gp"), ("hinge", "r2"),
                                               ("relativistic", "r1"), ("wgan", "clip"),
                                               ("non_saturating", "gradient_norm")])
def test_each_loss_and_a_sample_regularizer_step_on_digits(loss, regularizer):
    res = run_batch(make_study(spec({"loss": loss}, regularizer=regularizer, seeds=2, steps=2,
                                    record_every=1)).batches()[0])
    assert res.runs["stop_reason"].isna().all()
    assert np.isfinite(res.trajectories["value"]).all()


# --- losses ------------------------------------------------------------------------------------

def test_hinge_and_relativistic_losses_have_their_closed_form_gradients():
    """hinge: ∂L_D/∂a_real = −1[a < 1]/n, ∂L_D/∂a_fake = 1[a > −1]/n, ∂L_G/∂a_fake = −1/n;
    relativistic: L_D = mean ζ(a_f − a_r), ∂/∂a_r = −σ(a_f − a_r)/n, L_G = mean ζ(a_r − a_f)."""
    ar = torch.tensor([[-2.0, 0.5, 1.5, 3.0]], dtype=torch.float64, requires_grad=True)
    af = torch.tensor([[-3.0, -0.5, 0.2, 2.0]], dtype=torch.float64, requires_grad=True)
    w = torch.full((1, 4), 0.25, dtype=torch.float64)
    h = costs.gan_losses("hinge", ar, w, af, w)
    gr, gf = torch.autograd.grad(h["disc"].sum(), (ar, af))
    assert gr.tolist() == [[-0.25, -0.25, 0.0, 0.0]] and gf.tolist() == [[0.0, 0.25, 0.25, 0.25]]
    (gg,) = torch.autograd.grad(h["gen"].sum(), af)
    assert gg.tolist() == [[-0.25] * 4]
    assert h["disc"].item() == pytest.approx((3 + 0.5 + 0 + 0 + 0 + 0.5 + 1.2 + 3.0) / 4)
    rel = costs.gan_losses("relativistic", ar, w, af, w)
    d = (af - ar).detach().numpy()
    assert rel["disc"].item() == pytest.approx(np.log1p(np.exp(d)).mean(), rel=1e-14)
    assert rel["gen"].item() == pytest.approx(np.log1p(np.exp(-d)).mean(), rel=1e-14)
    (g_r,) = torch.autograd.grad(rel["disc"].sum(), ar)
    np.testing.assert_allclose(g_r.numpy(), -0.25 / (1 + np.exp(-d)), rtol=1e-14)
    with pytest.raises(ValueError, match="pairs"):
        costs.gan_losses("relativistic", ar, w, af[:, :3], w[:, :3])


def test_named_losses_are_the_papers_costs():
    assert costs.NAMED_LOSSES["minimax"] == ("gan", "minimax")
    for name in ("non_saturating", "maximum_likelihood"):
        assert costs.NAMED_LOSSES[name] == ("gan", name) and name in costs.COSTS


# --- data --------------------------------------------------------------------------------------

def test_digits_are_sklearns_scaled_to_minus_one_one_with_labels():
    from sklearn.datasets import load_digits

    from gamedyn import data

    d = data.digits()
    raw = load_digits()
    assert d.x.shape == (1797, 1, 8, 8) and d.y.tolist() == raw.target.tolist()
    np.testing.assert_array_equal((d.x[:, 0] + 1) * 8, raw.images)
    assert d.x.min() == -1.0 and d.x.max() == 1.0


def test_minibatches_come_from_the_data_and_each_runs_stream(tmp_path):
    from gamedyn import data

    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10))
    ds = data.from_file(str(tmp_path / "d.npz"))
    s = data.Sampler(ds, torch.float64, "cpu")
    b = s.sample(Streams(torch.tensor([3, 4, 5])), 200)
    assert b.shape == (3, 200, 3)
    rows = b.reshape(-1, 3).numpy()
    assert set(map(tuple, rows)) == set(map(tuple, x.astype(np.float64)))   # every row, nothing else
    alone = s.sample(Streams(torch.tensor([4])), 200)
    assert torch.equal(alone[0], b[1])


def test_a_flat_generator_and_a_file_of_data_are_accepted(tmp_path):
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n"
        "class G(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.l = nn.Linear(4, 6)\n"
        "    def forward(self, z): return self.l(z)\n"
        "class D(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.l = nn.Linear(6, 1)\n"
        "    def forward(self, x): return self.l(x.flatten(1))[:, 0]\n")
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(0).normal(size=(50, 2, 3)))
    (tmp_path / "s.yaml").write_text(
        "name: s\ngame: {name: module_gan, generator: {module: nets.py, class: G},\n"
        "  discriminator: {module: nets.py, class: D}, data: {file: data.npz}, latent: {dim: 4},\n"
        "  batch: 8, eval_samples: 8, loss: hinge}\n"
        "rules: [simultaneous]\noptimizer: {name: sgd, lr: 0.01}\nsteps: 2\nseeds: 2\n")
    study = load_study(tmp_path / "s.yaml")   # paths relative to the study file
    assert study.runs[0].plugins == (str((tmp_path / "nets.py").resolve()),)
    assert study.runs[0].columns["game_label"].startswith("module_gan(generator=G(), discriminator=D()")
    res = run_batch(study.batches()[0])
    assert res.runs["stop_reason"].isna().all()


# --- refusals: one line naming the key and the value --------------------------------------------

def write_nets(tmp_path, body: str) -> str:
    path = tmp_path / "bad_nets.py"
    path.write_text("import torch\nfrom torch import nn\n" + body)
    return str(path)


GOOD_D = ("class D(nn.Module):\n"
          "    def __init__(self):\n        super().__init__(); self.l = nn.Linear(64, 1)\n"
          "    def forward(self, x): return self.l(x.flatten(1))\n")


@pytest.mark.parametrize("body, key, words", [
    ("class G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.l = nn.Linear(4, 64); self.bn = nn.BatchNorm1d(64)\n"
     "    def forward(self, z): return self.bn(self.l(z))\n",
     "game.generator", ["G layer 'bn' (BatchNorm1d)", "track_running_stats=False", "GroupNorm"]),
    ("class G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.l = nn.Sequential(nn.Linear(4, 64), nn.AlphaDropout(0.3))\n"
     "    def forward(self, z): return self.l(z)\n",
     "game.generator", ["G layer 'l.1' (AlphaDropout)", "use nn.Dropout or p=0"]),
    ("class G(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n",
     "game.generator.kwargs", ["G(**{})", "width"]),
    ("class G(nn.Module):\n    def __init__(self):\n        super().__init__(); self.l = nn.Linear(4, 10)\n"
     "    def forward(self, z): return self.l(z)\n",
     "game.generator", ["returned [2, 10]", "expected [2, 1, 8, 8] or [2, 64]"]),
    ("class G(nn.Module):\n    def __init__(self):\n        super().__init__(); self.l = nn.Linear(5, 64)\n"
     "    def forward(self, z): return self.l(z)\n",
     "game.generator", ["latents of shape [2, 4]", "RuntimeError"]),
    ("G = 3\n", "game.generator.class", ["'G'", "not an nn.Module"]),
    ("raise ImportError('no module named foo')\n", "game.generator.module", ["does not import",
                                                                            "no module named foo"]),
])
def test_bad_networks_are_refused_in_one_line_naming_key_and_value(tmp_path, body, key, words):
    path = write_nets(tmp_path, body + GOOD_D)
    game = {"generator": {"module": path, "class": "G"}, "discriminator": {"module": path, "class": "D"}}
    with pytest.raises(StudyError) as e:
        make_study(spec(game))
    text = str(e.value)
    assert e.value.key == key and "\n" not in text, text
    for w in words:
        assert w in text, text


def test_bad_discriminator_output_and_missing_class_and_data_are_refused(tmp_path):
    path = write_nets(tmp_path, "class D1(nn.Module):\n    def __init__(self):\n"
                                "        super().__init__(); self.l = nn.Linear(64, 3)\n"
                                "    def forward(self, x): return self.l(x.flatten(1))\n")
    with pytest.raises(StudyError, match=r"returned \[2, 3\] for 2 samples; expected one output per "
                                         r"sample, \[2\] or \[2, 1\]"):
        make_study(spec({"discriminator": {"module": path, "class": "D1"}}))
    with pytest.raises(StudyError, match="'Nope': no such class in .*its nn.Module classes: D1") as e:
        make_study(spec({"discriminator": {"module": path, "class": "Nope"}}))
    assert e.value.key == "game.discriminator.class"
    with pytest.raises(StudyError, match="no such file") as e:
        make_study(spec({"data": {"file": str(tmp_path / "missing.npz")}}))
    assert e.value.key == "game.data.file"
    np.savez(tmp_path / "flat.npz", x=np.zeros(5))
    with pytest.raises(StudyError, match=r"x has shape \[5\] and dtype float64; expected"):
        make_study(spec({"data": {"file": str(tmp_path / "flat.npz")}}))
    with pytest.raises(StudyError, match="game.loss: 'lsgan' is not accepted: expected one of minimax"):
        make_study(spec({"loss": "lsgan"}))
    with pytest.raises(StudyError, match="game.latent.dist"):
        make_study(spec({"latent": {"dim": 4, "dist": "cauchy"}}))


def test_what_works_instead_of_batchnorm_does(tmp_path):
    """BatchNorm on batch statistics and GroupNorm under vmap: each run normalises its own batch."""
    path = write_nets(tmp_path, "class G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                                "        self.l = nn.Linear(4, 64)\n"
                                "        self.bn = nn.BatchNorm1d(64, track_running_stats=False)\n"
                                "        self.gn = nn.GroupNorm(4, 64)\n"
                                "    def forward(self, z): return self.gn(self.bn(self.l(z)))\n" + GOOD_D)
    game = build(generator={"module": path, "class": "G"}, discriminator={"module": path, "class": "D"})
    params = game.init_params([0, 1])
    z = torch.randn(2, 8, 4, dtype=torch.float64)
    x = game.generate(params, z)
    for r in range(2):
        plain = game.gen_net.load_run(params["gen"], r)
        torch.testing.assert_close(x[r], plain(z[r]), rtol=1e-12, atol=1e-12)
    assert math.isfinite(x.sum().item())


# --- final players -------------------------------------------------------------------------------

def test_results_give_back_each_runs_final_players_as_the_users_modules(tmp_path):
    from gamedyn import load, run_study

    run_study(make_study(spec(seeds=2, steps=4)), out=tmp_path, jobs=1, progress=False)
    res = load(tmp_path / "t")
    traj = res.trajectories
    mod = nets_module()
    for run_id in res.runs["run_id"]:
        players = res.players(run_id)
        assert isinstance(players["gen"], mod.Generator) and isinstance(players["disc"], mod.Discriminator)
        last = traj[(traj["run_id"] == run_id) & (traj["step"] == 4)]
        recorded = dict(zip(last["variable"].astype(str), last["value"]))
        for player, net in (("gen", players["gen"]), ("disc", players["disc"])):
            for name, p in net.named_parameters():   # the recorder's norms of the stacked weights
                assert torch.linalg.norm(p).item() == pytest.approx(recorded[f"norm.{player}.{name}"],
                                                                    rel=1e-6)
        assert players["gen"](torch.zeros(3, 4)).shape == (3, 1, 8, 8)
    run_study(make_study(spec({"save_players": False}, name="u", seeds=1, steps=1)), out=tmp_path,
              jobs=1, progress=False)
    res = load(tmp_path / "u")
    with pytest.raises(StudyError, match="save_players: true"):
        res.players(res.runs["run_id"].iloc[0])


def test_the_digits_study_runs_shrunk_and_draws_its_samples(tmp_path):
    """studies/digits_gan.yaml as shipped (its plugin module relative to it), with a tiny budget."""
    import yaml

    from gamedyn import run_study
    from gamedyn.report import write_report

    source = ROOT / "studies" / "digits_gan.yaml"
    study = load_study(source)
    assert study.runs[0].plugins == (str(ROOT / "studies" / "plugins" / "digits_mlp.py"),)
    shrunk = yaml.safe_load(source.read_text())
    shrunk.update(steps=2, record_every=1, seeds=2)
    shrunk["game"]["generator"]["module"] = shrunk["game"]["discriminator"]["module"] = NETS
    results = run_study(make_study(shrunk), out=tmp_path, jobs=1, progress=False)
    assert results.runs["stop_reason"].isna().all()
    (path,) = write_report(results)
    assert path.name == "image_samples.png" and path.stat().st_size > 10_000


# --- portable run ids -------------------------------------------------------------------------

def copy_study(folder, nets_text: str | None = None):
    """The digits study, its network module and a data file, copied under ``folder``."""
    import shutil

    import yaml

    (folder / "plugins").mkdir(parents=True)
    shutil.copy(ROOT / "studies" / "plugins" / "digits_mlp.py", folder / "plugins" / "digits_mlp.py")
    if nets_text is not None:
        (folder / "plugins" / "digits_mlp.py").write_text(nets_text)
    rng = np.random.default_rng(0)
    np.savez(folder / "x.npz", x=rng.uniform(-1, 1, (40, 1, 8, 8)), y=np.arange(40) // 4)
    study = yaml.safe_load((ROOT / "studies" / "digits_gan.yaml").read_text())
    study["game"]["data"] = [{"file": "./x.npz"}, "digits"]
    (folder / "s.yaml").write_text(yaml.safe_dump(study))
    return load_study(folder / "s.yaml")


def test_run_ids_and_study_hash_do_not_depend_on_where_the_study_lies(tmp_path):
    """The same study copied into two folders (another clone, a moved checkout) has the same ids
    and hash; the absolute paths stay in the configs (to load the files) but not in the ids or the
    runs table's columns; editing the network module changes the ids (old results are stale)."""
    a, b = copy_study(tmp_path / "one"), copy_study(tmp_path / "deeper" / "two")
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.hash == b.hash and len(a.runs) == 36
    nets = tmp_path / "one" / "plugins" / "digits_mlp.py"
    assert a.runs[0].config["game"]["generator"]["module"] == str(nets)
    assert a.runs[0].config["game"]["data"] == {"file": str(tmp_path / "one" / "x.npz")}
    assert a.runs[0].columns == b.runs[0].columns
    assert '"plugins/digits_mlp.py"' in a.runs[0].columns["game.generator"]
    assert str(tmp_path) not in str(a.runs[0].columns)
    text = (ROOT / "studies" / "plugins" / "digits_mlp.py").read_text() + "\n# edited\n"
    c = copy_study(tmp_path / "three", nets_text=text)
    assert not {r.run_id for r in c.runs} & {r.run_id for r in a.runs} and c.hash != a.hash


# --- class metrics of labelled data ---------------------------------------------------------

def test_class_metrics_are_sklearns_predictions_counted_by_hand():
    """Every run's samples classified in one matmul: the classes equal scikit-learn's own
    ``predict`` sample by sample; covered classes, KL to the data's label frequencies (scipy's
    ``entropy``) and the confident share counted here from ``predict`` / ``predict_proba``."""
    from scipy.stats import entropy

    from gamedyn import data, fit

    d = data.digits()
    clf = fit.classifier(d.x, d.y)
    assert clf is fit.classifier(d.x, d.y) and clf.accuracy > 0.95     # cached; held out
    rng = np.random.default_rng(3)
    x = d.x.reshape(len(d.x), -1)
    runs = np.stack([x[rng.integers(0, 1797, 40)],                     # data-like
                     x[d.y == 3][:40],                                  # one class only
                     x[np.isin(d.y, [1, 7])][:40] + 0.3 * rng.standard_normal((40, 64)),
                     rng.uniform(-1, 1, (40, 64))])                     # noise
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    m = fit.class_metrics(as_t(runs), as_t(clf.coef), as_t(clf.intercept), as_t(clf.prior),
                          hold_fraction=0.25, confidence=0.8)
    prior = np.bincount(d.y, minlength=10) / len(d.y)
    for r in range(len(runs)):
        pred = clf.model.predict(runs[r])
        hist = np.bincount(pred, minlength=10) / len(pred)
        np.testing.assert_allclose(m["hist"][r].numpy(), hist)
        assert m["classes_covered"][r] == (hist >= 0.25 / 10).sum()
        np.testing.assert_allclose(m["class_kl"][r].item(), entropy(hist, prior), rtol=1e-12)
        conf = (clf.model.predict_proba(runs[r]).max(1) >= 0.8).mean()
        np.testing.assert_allclose(m["confident"][r].item(), conf)
    assert m["classes_covered"][1] == 1 and m["class_kl"][1] > 2.0


def test_two_class_data_are_classified_as_scikit_learn_does(tmp_path):
    """With two classes scikit-learn keeps one row of weights (class 1's logit); the game's class
    metrics count each sample's class as ``predict`` does (they counted everything as class 0)."""
    from gamedyn import data, fit

    d = data.digits()
    keep = np.isin(d.y, [0, 1])
    np.savez(tmp_path / "two.npz", x=d.x[keep], y=d.y[keep])
    cls = GAMES.get("module_gan")
    game = cls.build([cls.resolve({**TINY, "data": {"file": str(tmp_path / "two.npz")}}, "game")],
                     torch.float64)
    clf = fit.classifier(d.x[keep], d.y[keep])
    x = d.x[keep].reshape(int(keep.sum()), -1)
    runs = np.stack([x[d.y[keep] == 0][:30], x[d.y[keep] == 1][:30], x[:30]])
    m = fit.class_metrics(torch.as_tensor(runs), **game.classifier, hold_fraction=0.25,
                          confidence=0.8)
    for r in range(3):
        hist = np.bincount(clf.model.predict(runs[r]), minlength=2) / 30
        np.testing.assert_allclose(m["hist"][r].numpy(), hist)
        conf = (clf.model.predict_proba(runs[r]).max(1) >= 0.8).mean()
        np.testing.assert_allclose(m["confident"][r].item(), conf)
    assert m["hist"][0, 0] > 0.9 and m["hist"][1, 1] > 0.9


def test_digits_runs_record_class_metrics_and_get_fit_and_collapse_labels(tmp_path):
    """The runs table has the class evidence and labels; a generator that is one digit is
    mode_collapse, one in the data's class proportions with confident samples is fit."""
    from gamedyn import fit, run_study

    game = build()
    res = run_study(make_study(spec(seeds=2, steps=2, record_every=1)), out=tmp_path, jobs=1,
                    progress=False)
    cols = {"classes_covered", "class_kl", "confident", "fit", "mode_collapse", "dynamics"}
    assert cols <= set(res.runs.columns)
    assert set(res.runs["fit"]) <= set(fit.FIT_LABELS) - {"n/a"}
    # the labels from the series: one digit everywhere vs the data's proportions
    T, C = 4, 10
    steps = np.arange(T) * 10.0
    one = np.zeros((T, C))
    one[:, 3] = 1.0
    prior = np.bincount(game.dataset.y, minlength=10) / len(game.dataset.y)
    mass = np.stack([one, np.tile(prior, (T, 1))])                     # [2, T, C]
    series = {"fit.energy": np.ones((2, T)), "D.real": np.zeros((2, T)), "D.fake": np.zeros((2, T)),
              "fit.classes_covered": np.array([[1.0] * T, [10.0] * T]),
              "fit.class_kl": np.array([[np.log(1 / prior[3])] * T, [0.0] * T]),
              "fit.confident": np.array([[1.0] * T, [0.9] * T]),
              **{f"fit.mass[{k}]": mass[:, :, k] for k in range(C)}}
    out = game.diagnose_fit(steps, series, np.array([T, T]))
    assert out["fit"].tolist() == ["mode_collapse", "fit"]
    assert out["mode_collapse"].tolist() == [True, False]
    assert out["dynamics"].tolist() == ["converged", "converged"]


# --- instance noise on images (Monte Carlo) -------------------------------------------------

def test_instance_noise_on_64_pixels_is_a_monte_carlo_average_from_each_runs_stream():
    """d = 64: the quadrature grid (20^64 points) is replaced by mc_samples draws per sample; the
    losses equal the objective on x + σε written out here with the same draws of the run's stream
    (real, fake, then ε for each), and a study with it steps."""
    from gamedyn.regularizers import REGULARIZERS

    game = build(loss="wgan")
    cls = REGULARIZERS.get("instance_noise")
    reg = cls.build([cls.resolve({"sigma": 0.3, "mc_samples": 3}, "regularizer")] * 2, torch.float64)
    params = game.init_params([4, 7])
    keys = torch.tensor([4, 7])
    with game.using(Streams(keys)):
        got = reg.losses(game, params)
    rng = Streams(keys)
    xr = game.sampler.sample(rng, game.batch)
    xf = game.generate(params, game.latents(rng, game.batch))
    er = rng.fast_normal(game.batch * 3, 64, dtype=torch.float64).reshape(2, game.batch, 3, 64)
    ef = rng.fast_normal(game.batch * 3, 64, dtype=torch.float64).reshape(2, game.batch, 3, 64)
    ar = game.disc_logit(params, (xr[:, :, None] + 0.3 * er).reshape(2, -1, 64))
    af = game.disc_logit(params, (xf[:, :, None] + 0.3 * ef).reshape(2, -1, 64))
    torch.testing.assert_close(got["disc"], af.mean(1) - ar.mean(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got["gen"], ar.mean(1) - af.mean(1), rtol=1e-12, atol=1e-12)  # V
    res = run_batch(make_study(spec(regularizer={"name": "instance_noise", "sigma": 0.1}, seeds=2,
                                    steps=2, record_every=1)).batches()[0])
    assert res.runs["stop_reason"].isna().all()
