"""Fit metrics of image GANs: the batched Fréchet distance, the classifier cached on disk, and what
``module_gan`` records with them.

Checked against independent computations: ``scipy.linalg.sqrtm`` one run at a time; the closed form
of the distance between Gaussians with diagonal covariances; scikit-learn's own estimators."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from gamedyn import fit
from gamedyn.batch import run_batch
from gamedyn.games import GAMES
from gamedyn.random import Streams
from gamedyn.study import make_study
from tests.conftest import ROOT

NETS = str(ROOT / "studies" / "plugins" / "digits_mlp.py")
TINY = {"generator": {"module": NETS, "class": "Generator", "kwargs": {"latent": 4, "hidden": 8}},
        "discriminator": {"module": NETS, "class": "Discriminator", "kwargs": {"hidden": 8}},
        "latent": {"dim": 4}, "batch": 8, "eval_samples": 16}

pytestmark = pytest.mark.usefixtures("one_thread")


def build(dtype=torch.float64, **game):
    cls = GAMES.get("module_gan")
    return cls.build([cls.resolve({**TINY, **game}, "game")], dtype)


def labelled(n_classes: int, seed: int = 0, n: int = 150, d: int = 6):
    """A small labelled data set: n samples [n, 1, d] around n_classes means, labels cycling."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n_classes, d))[y] + 0.5 * rng.standard_normal((n, d))
    return x[:, None], y.astype(np.int64)


# --- the Fréchet distance ---------------------------------------------------------------------

def frechet_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """One run's d² with numpy's covariances and scipy's matrix square root."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(cx @ cy).real
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2.0 * root))


def test_the_batched_frechet_distance_equals_scipys_sqrtm_run_by_run():
    """Five runs of Gaussian samples (each its own mean, covariance and sample sizes' draw), all at
    once, against scipy.linalg.sqrtm one run at a time; with y given or its reference."""
    rng = np.random.default_rng(1)
    R, n, m, d = 5, 300, 200, 7
    x = np.empty((R, n, d))
    y = np.empty((R, m, d))
    for r in range(R):
        ax, ay = rng.normal(size=(d, d)), rng.normal(size=(d, d)) * (r + 1) / 3
        x[r] = rng.normal(size=d) + rng.standard_normal((n, d)) @ ax
        y[r] = rng.normal(size=d) * r + rng.standard_normal((m, d)) @ ay
    got = fit.frechet_distance(torch.as_tensor(x), torch.as_tensor(y))
    via_ref = fit.frechet_distance(torch.as_tensor(x), ref=fit.frechet_reference(torch.as_tensor(y)))
    assert got.shape == (R,) and torch.equal(got, via_ref)
    want = [frechet_scipy(x[r], y[r]) for r in range(R)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)
    assert len(set(want)) == R and min(want) > 1.0
    # float32 samples: computed in float64, returned in float32
    got32 = fit.frechet_distance(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5)


@pytest.mark.parametrize("n, m", [(20, 30), (30, 20), (25, 25)])
def test_with_more_dimensions_than_samples_the_sample_space_form_agrees(n, m):
    """d = 40 > m: the trace from the eigenvalues of G Gᵀ (or GᵀG) in sample space equals the
    d-space form (a reference built with Σ₂^{1/2}) and numpy's eigenvalues of the singular Σ₁Σ₂."""
    rng = np.random.default_rng(4)
    R, d = 3, 40
    x = torch.as_tensor(rng.standard_normal((R, n, d)) @ rng.normal(size=(d, d)))
    y = torch.as_tensor(rng.standard_normal((R, m, d)) @ rng.normal(size=(d, d)) + 0.5)
    ref = fit.frechet_reference(y)
    assert "centred" in ref and "sqrt" not in ref
    got = fit.frechet_distance(x, ref=ref)
    mu, cov = fit.gaussian_moments(y)
    square = {"mean": mu, "trace": cov.diagonal(0, -2, -1).sum(-1), "sqrt": fit.psd_sqrt(cov)}
    np.testing.assert_allclose(got.numpy(), fit.frechet_distance(x, ref=square).numpy(), rtol=1e-7)
    for r in range(R):
        xr, yr = x[r].numpy(), y[r].numpy()
        cx, cy = np.cov(xr, rowvar=False), np.cov(yr, rowvar=False)
        root = np.sqrt(np.linalg.eigvals(cx @ cy).real.clip(0)).sum()
        want = ((xr.mean(0) - yr.mean(0)) ** 2).sum() + np.trace(cx + cy) - 2 * root
        np.testing.assert_allclose(got[r].item(), want, rtol=1e-7)


def test_the_frechet_distance_of_a_sample_to_itself_is_zero_to_rounding():
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.standard_normal((3, 256, 64)) @ rng.normal(size=(64, 64)))
    scale = fit.gaussian_moments(x)[1].diagonal(0, -2, -1).sum(-1)     # tr Σ
    d2 = fit.frechet_distance(x, x)
    assert (d2 >= 0).all() and (d2 <= 1e-10 * scale).all()
    # fewer samples than dimensions (singular covariances, clamped eigenvalues): still 0
    few = x[:, :20]
    assert (fit.frechet_distance(few, few) <= 1e-10 * scale).all()


def exact_moments(rng, n: int, mean: np.ndarray, var: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """n samples whose sample mean is exactly ``Q mean`` and unbiased covariance exactly
    Q diag(var) Qᵀ: Gaussian draws whitened by their own moments, then scaled and rotated."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return (mean + z * np.sqrt(var)) @ rotation.T


def test_the_frechet_distance_between_diagonal_gaussians_has_its_closed_form():
    """d² = ‖μ₁ − μ₂‖² + Σᵢ (√aᵢ − √bᵢ)² for covariances diag(a), diag(b); also after a common
    rotation Q (d² is invariant under it; the matrices are then full), and with a coordinate of
    variance 0 (a constant pixel)."""
    rng = np.random.default_rng(3)
    d = 6
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    cases = []
    for r in range(4):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * r
        a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
        rot = np.eye(d) if r % 2 == 0 else Q
        cases.append((exact_moments(rng, 120, mu1, a, rot), exact_moments(rng, 90, mu2, b, rot),
                      ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()))
    x = torch.as_tensor(np.stack([c[0] for c in cases]))
    y = torch.as_tensor(np.stack([c[1] for c in cases]))
    np.testing.assert_allclose(fit.frechet_distance(x, y).numpy(), [c[2] for c in cases], rtol=1e-10)
    # a constant coordinate in both samples: only its means' gap adds
    cx, cy = torch.full((4, 120, 1), -1.0, dtype=x.dtype), torch.full((4, 90, 1), 0.5, dtype=x.dtype)
    got = fit.frechet_distance(torch.cat([x, cx], -1), torch.cat([y, cy], -1))
    np.testing.assert_allclose(got.numpy(), [c[2] + 2.25 for c in cases], rtol=1e-10)


# --- the classifier cache ---------------------------------------------------------------------

@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache folder and no classifier in memory: each construction reads the disk."""
    monkeypatch.setenv("GAMEDYN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fit, "_CLASSIFIERS", {})
    return tmp_path / "cache" / "classifiers"


def forget(monkeypatch):
    monkeypatch.setattr(fit, "_CLASSIFIERS", {})


def refuse_training(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("the classifier was fitted again instead of read from the cache")

    monkeypatch.setattr(fit, "_train_classifier", no)


def same(a: fit.Classifier, b: fit.Classifier) -> bool:
    arrays = ("coef", "intercept", "prior", "hidden_weight", "hidden_bias", "out_weight", "out_bias")
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays) \
        and a.accuracy == b.accuracy and a.feature_accuracy == b.feature_accuracy


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_second_construction_reads_the_classifier_from_disk(fresh, monkeypatch, n_classes):
    x, y = labelled(n_classes)
    first = fit.classifier(x, y)
    assert first.path == fresh / f"{fit.classifier_key(x, y)}.npz" and first.path.is_file()
    assert [p.name for p in fresh.iterdir()] == [first.path.name]       # no temporary file left
    forget(monkeypatch)
    refuse_training(monkeypatch)
    second = fit.classifier(x, y)
    assert second is not first and same(first, second) and second.path == first.path
    flat = x.reshape(len(x), -1)   # the rebuilt scikit-learn model predicts as the fitted one did
    np.testing.assert_array_equal(second.model.predict(flat), first.model.predict(flat))
    np.testing.assert_array_equal(second.model.predict_proba(flat), first.model.predict_proba(flat))


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "another key", "not finite"])
def test_a_damaged_cache_file_is_refitted_and_overwritten(fresh, monkeypatch, damage):
    x, y = labelled(3)
    good = fit.classifier(x, y)
    path = good.path
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        if damage == "another key":
            arrays["key"] = np.str_("0" * 64)
        else:
            arrays["coef"] = np.full_like(arrays["coef"], np.nan)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    forget(monkeypatch)
    calls = []
    train = fit._train_classifier
    monkeypatch.setattr(fit, "_train_classifier", lambda *a: calls.append(1) or train(*a))
    again = fit.classifier(x, y)
    assert calls == [1] and same(good, again) and again.path == path
    with np.load(path) as f:                                           # rewritten whole
        assert str(f["key"]) == fit.classifier_key(x, y) and np.isfinite(f["coef"]).all()
    forget(monkeypatch)
    refuse_training(monkeypatch)
    assert same(good, fit.classifier(x, y))


def test_different_data_get_different_cache_files(fresh):
    x, y = labelled(3)
    x2, _ = labelled(3, seed=1)
    y2 = y.copy()
    y2[[0, 1]] = y2[[1, 0]]     # the same samples, two labels swapped
    paths = {fit.classifier(*data).path for data in ((x, y), (x2, y), (x, y2))}
    assert len(paths) == 3 and sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in paths)
    assert fit.classifier_key(x, y) == fit.classifier_key(x.copy(), y.copy())


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GAMEDYN_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert fit.cache_dir() == tmp_path / "home" / ".cache" / "gamedyn"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")    # the XDG spec: absolute paths only
    assert fit.cache_dir() == tmp_path / "home" / ".cache" / "gamedyn"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fit.cache_dir() == tmp_path / "xdg" / "gamedyn"
    monkeypatch.setenv("GAMEDYN_CACHE_DIR", str(tmp_path / "mine"))
    assert fit.cache_dir() == tmp_path / "mine"


def test_a_cache_folder_that_cannot_be_written_costs_only_a_refit(monkeypatch, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("in the way")
    monkeypatch.setenv("GAMEDYN_CACHE_DIR", str(blocker))
    forget(monkeypatch)
    x, y = labelled(3)
    with pytest.warns(RuntimeWarning, match="could not cache the classifier"):
        clf = fit.classifier(x, y)
    assert clf.path is None and 0.0 <= clf.accuracy <= 1.0 and blocker.read_text() == "in the way"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_feature_network_is_scikit_learns_mlp_and_its_accuracies_are_held_out(fresh):
    """The stored weights are an MLPClassifier(**FEATURE_NET) fitted here on the samples i mod 5 ≠ 0;
    class_features is its hidden layer (its output layer on top gives scikit-learn's
    probabilities); both accuracies are recounted from the weights on the samples i mod 5 = 0."""
    from sklearn.neural_network import MLPClassifier

    x, y = labelled(3)
    clf = fit.classifier(x, y)
    flat = x.reshape(len(x), -1)
    held = np.arange(len(x)) % 5 == 0
    net = MLPClassifier(**fit.FEATURE_NET).fit(flat[~held], y[~held])
    np.testing.assert_array_equal(clf.hidden_weight, net.coefs_[0].T)
    h = fit.class_features(torch.as_tensor(flat)[None], torch.as_tensor(clf.hidden_weight),
                           torch.as_tensor(clf.hidden_bias))[0].numpy()
    logits = h @ clf.out_weight.T + clf.out_bias
    np.testing.assert_allclose(scipy.special.softmax(logits, 1), net.predict_proba(flat), rtol=1e-10)
    assert clf.feature_accuracy == (logits.argmax(1)[held] == y[held]).mean()
    assert clf.accuracy == ((flat @ clf.coef.T + clf.intercept).argmax(1)[held] == y[held]).mean()


# --- what module_gan records ------------------------------------------------------------------

def test_digits_runs_carry_the_classifiers_held_out_accuracy_and_frechet_distances():
    """The runs table's ``classifier_accuracy`` (the same in every run) is the logistic regression's
    held-out accuracy recounted from its weights (96.9 % on digits), ``feature_accuracy`` the
    feature network's (≥ the linear one's); ``frechet`` and ``frechet_pixels`` are the last
    records of the trajectories' ``fit.frechet`` and ``fit.frechet_pixels``."""
    from gamedyn import data

    spec = {"name": "t", "game": {"name": "module_gan", **TINY}, "rules": ["simultaneous"],
            "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.5}, "steps": 2, "record_every": 1,
            "seeds": 3, "dtype": "float32"}
    res = run_batch(make_study(spec).batches()[0])
    runs, traj = res.runs, res.trajectories
    d = data.digits()
    clf = fit.classifier(d.x, d.y)
    flat = d.x.reshape(len(d.x), -1)
    held = np.arange(len(flat)) % 5 == 0
    recount = ((flat @ clf.coef.T + clf.intercept).argmax(1)[held] == d.y[held]).mean()
    assert runs["classifier_accuracy"].tolist() == [recount] * 3
    assert recount == pytest.approx(0.9694, abs=1e-4)
    assert (runs["feature_accuracy"] == clf.feature_accuracy).all() and clf.feature_accuracy >= recount
    for col in ("frechet", "frechet_pixels"):
        last = traj[(traj["variable"] == f"fit.{col}") & (traj["step"] == 2)].set_index("run_id")["value"]
        np.testing.assert_array_equal(runs.set_index("run_id")[col], last.loc[runs["run_id"]])
        assert (last > 0).all()


def test_without_labels_only_the_pixel_frechet_distance_is_recorded(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", x=rng.uniform(-1, 1, (40, 1, 8, 8)))
    game = build(data={"file": str(tmp_path / "x.npz")})
    params = game.init_params([0, 1])
    with game.using(Streams(torch.tensor([0, 1]))):
        m = game.metrics(params)
    assert "fit.frechet_pixels" in m and "fit.frechet" not in m and "fit.class_kl" not in m
    assert m["fit.frechet_pixels"].shape == (2,) and (m["fit.frechet_pixels"] > 0).all()
    T = 3
    series = {k: np.ones((2, T)) for k in m}
    out = game.diagnose_fit(np.arange(T) * 1.0, series, np.array([T, T]))
    assert out["fit"].tolist() == ["n/a", "n/a"] and out["frechet_pixels"].tolist() == [1.0, 1.0]
    assert "classifier_accuracy" not in out and "frechet" not in out


@pytest.mark.invariance
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eval_samples", [16, 80])
def test_a_run_alone_has_the_same_frechet_distances_as_in_a_batch(dtype, eval_samples):
    """Bit for bit: each run's evaluation sample, features and Fréchet distances do not depend on
    the other runs of its batch; with fewer evaluation samples than the 64 pixels and features
    (the sample-space form) and with more (the d-space form)."""
    game = build(dtype, eval_samples=eval_samples)
    seeds = [3, 1, 4, 1, 5, 9, 2, 6]
    params = game.init_params(seeds)
    with game.using(Streams(torch.tensor(seeds))):
        together = game.metrics(params)
        ev = game._evaluation()
    form = "centred" if eval_samples < 64 else "sqrt"
    assert form in ev["data_pixels"] and form in ev["data_features"]
    assert together["fit.frechet"].dtype == dtype and together["fit.frechet"].shape == (8,)
    for r in (0, 5, 7):
        alone_game = build(dtype, eval_samples=eval_samples)
        mine = {p: {k: v[r:r + 1] for k, v in named.items()} for p, named in params.items()}
        with alone_game.using(Streams(torch.tensor(seeds[r:r + 1]))):
            alone = alone_game.metrics(mine)
        for k in ("fit.frechet", "fit.frechet_pixels"):
            assert torch.equal(alone[k], together[k][r:r + 1]), k
