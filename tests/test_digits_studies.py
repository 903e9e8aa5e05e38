"""The digits studies (``studies/digits.yaml``, ``studies/digits_costs.yaml``) and what they need of
``module_gan``: generated images kept at chosen record steps (``snapshots``), the gradient-variance
diagnostics of the generator costs (``diagnostics: variance``), and the figures ``image_snapshots``,
``class_table`` and ``cost_variance``.

Checked against independent computations: the snapshots against the user's plain modules applied to
the evaluation latents, the variance metrics against a per-sample autograd loop over plain modules,
one run at a time; a run alone against the same run in a batch, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gamedyn.batch import run_batch
from gamedyn.errors import StudyError
from gamedyn.games import GAMES
from gamedyn.games.module_gan import EVAL_STREAM, decode_snapshots
from gamedyn.modules import decode_players, torch_seed
from gamedyn.random import Streams
from gamedyn.study import load_study, make_study
from tests.conftest import ROOT
from tests.test_module_gan import NETS, TINY, assert_alone_as_in_batch, nets_module, spec

pytestmark = pytest.mark.usefixtures("one_thread")


def build(dtype=torch.float64, **game):
    cls = GAMES.get("module_gan")
    return cls.build([cls.resolve({**TINY, **game}, "game")], dtype)


# --- snapshots ------------------------------------------------------------------------------

def test_snapshots_are_the_generators_images_and_a_run_alone_equals_it_in_a_batch():
    """Step 0's images are the initial generator (the user's module under the run's seed) on the
    first evaluation latents, the final ones the saved final generator on them; step 3 is no record
    step (record_every 2), so it is listed missing; snapshots, trajectories and the variance
    metrics of a run alone equal those of the run in a batch of 8, bit for bit."""
    game = {"snapshots": {"steps": [3, 0, 2], "images": 5}, "diagnostics": "variance"}
    (batch,) = make_study(spec(game, steps=4, record_every=2)).batches()
    together = assert_alone_as_in_batch(batch, columns=("snapshots",))
    variables = set(together.trajectories["variable"].astype(str))
    assert {"var.rel", "var.ess", "var.top1", "var.mean_norm"} <= variables
    mod = nets_module()
    for i in (0, 5):
        run = batch[i]
        shots = decode_snapshots(together.runs["snapshots"].iloc[i])
        assert sorted(k for k in shots if isinstance(k, int)) == [0, 2] and shots["missing"] == [3]
        seed = run.config["seed"]
        z = Streams(torch.tensor([seed]), EVAL_STREAM).fast_normal(16, 4, dtype=torch.float32)[0, :5]
        torch.manual_seed(torch_seed(seed, 1))
        first = mod.Generator(latent=4, hidden=8)
        final = decode_players(together.runs["players"].iloc[i])["gen"]
        with torch.no_grad():
            for key, net in ((0, first), ("final", final)):
                assert shots[key].shape == (5, 1, 8, 8) and shots[key].dtype == np.float32
                np.testing.assert_allclose(shots[key], net(z).numpy(), atol=1e-3, rtol=0)
    assert not np.array_equal(shots[0], shots["final"])


def test_no_snapshots_and_no_variance_by_default():
    (batch,) = make_study(spec(seeds=2, steps=2, record_every=1)).batches()
    res = run_batch(batch)
    assert "snapshots" not in res.runs
    assert not any(str(v).startswith("var.") for v in res.trajectories["variable"].unique())


@pytest.mark.parametrize("value, key, words", [
    (100, "game.snapshots", ["100 is not accepted", "{steps: [record steps", "grid axis"]),
    ([100, 200], "game.snapshots", ["100 is not accepted", "grid axis"]),
    ({"steps": []}, "game.snapshots.steps", ["[] is not accepted", "non-empty list"]),
    ({"steps": [0, 2, 2]}, "game.snapshots.steps", ["step 2 is given twice"]),
    ({"steps": [-1]}, "game.snapshots.steps", ["[-1] is not accepted", "integers >= 0"]),
    ({"steps": [1.5]}, "game.snapshots.steps", ["[1.5] is not accepted"]),
    ({"images": 4}, "game.snapshots.steps", ["None is not accepted"]),
    ({"steps": [0], "images": 0}, "game.snapshots.images", ["0 is not accepted", "eval_samples = 16"]),
    ({"steps": [0], "images": 17}, "game.snapshots.images", ["17 is not accepted", "from 1 to"]),
    ({"steps": [0], "every": 2}, "game.snapshots.every", ["unknown key", "steps, images"]),
])
def test_bad_snapshots_are_refused_in_one_line_naming_the_key(value, key, words):
    with pytest.raises(StudyError) as e:
        make_study(spec({"snapshots": value}))
    text = str(e.value)
    assert e.value.key == key and "\n" not in text, text
    for w in words:
        assert w in text, text


# --- the generator's gradient variance --------------------------------------------------------

@pytest.mark.parametrize("loss", ["maximum_likelihood", "non_saturating", "minimax"])
def test_the_variance_metrics_equal_a_per_sample_autograd_loop_on_plain_modules(loss):
    """Each run's per-sample generator gradients, one sample at a time through its own plain
    modules with autograd, the costs written out with softplus and exp: var.rel = tr Cov / ‖mean‖²
    (numpy's covariance), var.ess from the weights |f′(a)| (σ(a), σ(−a), e^a), var.top1, and
    var.mean_norm, to rounding."""
    import torch.nn.functional as F

    game = build(loss=loss, diagnostics="variance", eval_samples=40)
    seeds = [3, 11]
    params = game.init_params(seeds)
    with torch.no_grad():   # move the discriminator off its start, so the weights differ
        for v in params["disc"].values():
            v.mul_(3.0)
    game.rng = Streams(torch.tensor(seeds))
    got = game.metrics(params)
    ev = game._evaluation()
    f = {"minimax": lambda a: -F.softplus(a), "non_saturating": lambda a: F.softplus(-a),
         "maximum_likelihood": lambda a: -torch.exp(a)}[loss]
    weight = {"minimax": torch.sigmoid, "non_saturating": lambda a: torch.sigmoid(-a),
              "maximum_likelihood": torch.exp}[loss]
    for r in range(2):
        G, D = game.gen_net.load_run(params["gen"], r), game.disc_net.load_run(params["disc"], r)
        grads, weights = [], []
        for i in range(40):
            a = D(G(ev["z"][r, i:i + 1])).reshape(())
            g = torch.autograd.grad(f(a), list(G.parameters()))
            grads.append(torch.cat([t.reshape(-1) for t in g]).numpy())
            weights.append(weight(a).item())
        g = np.stack(grads)                                                  # [n, P]
        mean = g.mean(0)
        rel = np.trace(np.cov(g, rowvar=False)) / (mean @ mean)
        w = np.array(weights)
        norms = np.linalg.norm(g, axis=1)
        np.testing.assert_allclose(got["var.rel"][r].item(), rel, rtol=1e-9)
        np.testing.assert_allclose(got["var.ess"][r].item(), w.sum() ** 2 / (40 * (w**2).sum()), rtol=1e-9)
        np.testing.assert_allclose(got["var.top1"][r].item(), norms.max() / norms.sum(), rtol=1e-9)
        np.testing.assert_allclose(got["var.mean_norm"][r].item(), np.linalg.norm(mean), rtol=1e-9)
    assert 0 < got["var.ess"].min() and got["var.ess"].max() <= 1
    assert math.isfinite(got["var.rel"].sum().item())


def test_variance_refuses_batchnorm_in_one_line(tmp_path):
    path = tmp_path / "bn.py"
    path.write_text("from torch import nn\n"
                    "class G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    "        self.l = nn.Linear(4, 64)\n"
                    "        self.bn = nn.BatchNorm1d(64, track_running_stats=False)\n"
                    "    def forward(self, z): return self.bn(self.l(z))\n")
    with pytest.raises(StudyError) as e:
        make_study(spec({"generator": {"module": str(path), "class": "G"}, "diagnostics": "variance"}))
    assert e.value.key == "game.diagnostics" and "\n" not in str(e.value)
    assert "G layer 'bn' (BatchNorm1d)" in str(e.value)


# --- the studies, shrunk ----------------------------------------------------------------------

def shrunk(name: str) -> dict:
    """studies/<name>.yaml as shipped, shrunk: 4 steps, 1 seed, tiny networks, 4 images at step 2."""
    import yaml

    source = ROOT / "studies" / f"{name}.yaml"
    load_study(source)   # valid as shipped (its plugin module relative to it)
    study = yaml.safe_load(source.read_text())
    study.update(steps=4, record_every=2, seeds=1)
    g = study["game"]
    g["generator"] = {"module": NETS, "class": "Generator", "kwargs": {"latent": 4, "hidden": 8}}
    g["discriminator"] = {"module": NETS, "class": "Discriminator", "kwargs": {"hidden": 8}}
    g.update(latent={"dim": 4, "dist": "normal"}, batch=8, eval_samples=32,
             snapshots={"steps": [2], "images": 4})
    return study


@pytest.mark.parametrize("name, figures", [
    ("digits", ["image_snapshots", "class_table", "image_samples"]),
    ("digits_costs", ["cost_variance", "class_table", "image_snapshots"]),
])
def test_the_digits_studies_run_shrunk_and_draw_their_figures(tmp_path, name, figures):
    from gamedyn import run_study
    from gamedyn.report import write_report

    study = shrunk(name)
    assert study["figures"] == figures and study["seeds"] == 1
    results = run_study(make_study(study), out=tmp_path, jobs=1, progress=False)
    runs = results.runs
    assert runs["stop_reason"].isna().all() and runs["snapshots"].notna().all()
    if name == "digits":
        assert set(runs["rule"]) == {"simultaneous", "alternating", "extragradient", "optimistic",
                                     "consensus", "unrolled"}
        assert set(runs["regularizer.gamma"]) == {0.0, 1.0} and len(runs) == 12
    else:
        assert set(runs["game.loss"]) == {"minimax", "non_saturating", "maximum_likelihood"}
        assert set(runs["rule"]) == {"simultaneous", "alternating"} and len(runs) == 6
        assert "var.rel" in set(results.trajectories["variable"].astype(str))
    paths = write_report(results)
    assert [p.stem for p in paths] == figures
    for p in paths:
        assert p.stat().st_size > 10_000, p
    table = (paths[0].parent / "class_table.md").read_text()
    assert table.count("\n") == 2 + len(runs) and "classes covered" in table


def test_the_class_table_counts_fit_labels_and_gives_mean_and_standard_error():
    import pandas as pd

    from gamedyn.figures.class_table import class_table_frame

    runs = pd.DataFrame({
        "seed": [0, 1, 2, 0], "game": "module_gan", "rule": "simultaneous", "rule_label": "simultaneous",
        "regularizer": "r1", "regularizer_label": ["r1(gamma=0.0)"] * 3 + ["r1"],
        "regularizer.gamma": [0.0, 0.0, 0.0, 1.0], "game.loss": "non_saturating",
        "classes_covered": [2.0, 4.0, 6.0, 9.0], "class_kl": [1.0, 0.5, 0.0, 0.1],
        "confident": [0.1, 0.2, 0.3, 0.4], "frechet": 1.0, "frechet_pixels": 2.0,
        "fit": ["mode_collapse", "underfit", "mode_collapse", "fit"]})
    t = class_table_frame(runs)
    assert t["regularizer"].tolist() == ["r1 gamma=0", "r1 gamma=1"] and "loss" not in t
    assert t["runs"].tolist() == [3, 1]
    assert t["classes_covered"].tolist() == [4.0, 9.0]
    assert t["classes_covered_se"][0] == pytest.approx(2 / math.sqrt(3)) and np.isnan(t["class_kl_se"][1])
    assert t["fit"].tolist() == ["2 × mode_collapse, underfit", "fit"]
