"""Fit to a mixture of Gaussians: mode metrics, sample distances, and the fit and dynamics labels of
games whose generator is a neural network. For labelled data (images), the classes of a classifier
trained on the data take the modes' place (:func:`classifier`, :func:`class_metrics`): covered
classes for captured modes, confidently classified samples for high-quality ones, KL to the data's
class frequencies for KL to uniform; the same labels follow. The classifier is fitted once per data
set and cached on disk (:func:`cache_dir`), with its held-out accuracy. (The per-rule tables built
from these labels are in :mod:`gamedyn.tables`.)

Metrics (vectorised over the run axis; samples ``x`` ``[R, n, d]``, mode means ``[K, d]``)
---------------------------------------------------------------------------------------------
Following VEEGAN (Srivastava et al. 2017, arXiv 1705.07761, §5.1) and PacGAN (Lin et al. 2018,
arXiv 1712.04086, §5.1):

- a sample is **high quality** when it lies within ``3σ`` of its nearest mode mean (σ the modes'
  standard deviation); ``high_quality`` is their fraction. For the data itself in 2-D this is
  P(χ²₂ ≤ 9) = 1 − e^{−9/2} ≈ 0.98889 (in 1-D, P(|N(0,1)| ≤ 3) ≈ 0.99730);
- a mode is **captured** when it is the nearest mode of at least one high-quality sample;
  ``modes`` counts them;
- ``kl`` is KL(p̂ ‖ u) = Σ_k p̂_k log(K p̂_k), p̂ the histogram of *all* samples' nearest modes and u
  uniform over the K modes (0 log 0 = 0): 0 for balanced mass, log K when all mass sits at one mode
  (PacGAN's "reverse KL" of the mode distribution);
- ``energy`` is the energy distance (Székely & Rizzo 2013) between the samples and a data sample,
  √(2 E‖X−Y‖ − E‖X−X′‖ − E‖Y−Y′‖) over the empirical distributions (V-statistics, so ≥ 0; in 1-D
  it equals ``scipy.stats.energy_distance``); in 1-D also ``w1``, the 1-Wasserstein distance
  (``scipy.stats.wasserstein_distance``; for equal sample sizes the mean |x₍ᵢ₎ − y₍ᵢ₎| of the sorted
  samples, computed that way here);
- ``frechet`` (images): the squared Fréchet distance ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2})
  between Gaussians fitted to two samples (Dowson & Landau 1982; :func:`frechet_distance`), on the
  hidden features of a small network trained on the data's labels — the construction of FID
  (Heusel et al. 2017, arXiv 1706.08500) on another feature space, so *not* Inception-FID and not
  comparable to published FIDs — and on the pixels (``frechet_pixels``);
- ``mass[k]``: the fraction of samples whose nearest mode is k (the histogram p̂), from which
  movement and mode hopping are judged: a collapsed generator's samples are often too spread to be
  high quality (σ = 0.02 on the ring: 3σ = 0.06) while their mass still sits at one mode.

The fit label (:func:`fit_labels`) — the decision rule
-----------------------------------------------------
From a run's last valid record, with m modes captured, q the high-quality fraction and
κ = kl / log K ∈ [0, 1], the first that holds:

1. **fit** — m ≥ ``fit_modes``·K, q ≥ ``fit_quality`` and κ ≤ ``fit_kl``: (nearly) every mode is
   covered, in balance, with mostly good samples;
2. **mode_collapse** — κ ≥ ``collapse_kl``: the mass concentrates on a few modes (one mode: κ = 1;
   half the modes, evenly: κ = log 2 / log K, ⅓ on the ring of 8);
3. **underfit** — otherwise: balanced but poor samples, or a few modes missing.

``n/a`` when the run has no valid record. Defaults in :data:`FIT_DEFAULTS`; a game exposes them as
parameters, so a study sets them under ``game:``.

The dynamics of a neural game (:func:`sample_dynamics`) — the decision rule
-------------------------------------------------------------------------
A neural player's parameters are high-dimensional and its stochastic gradients never vanish, so the
generic labels of :mod:`gamedyn.diagnose` (distance to stationarity, crossings of a parameter
coordinate) would call every run cycling or drifting. Instead the generator is judged by what it
generates on the fixed evaluation sample. Over the *late window* (the last ``late_fraction`` of a
run's valid records):

- the **movement** at a record is the total-variation distance ½ Σ_k |p̂_t,k − p̂_{t−1},k| between
  consecutive mode histograms (``mass[k]``), in [0, 1]; ``movement`` is its median over the window;
- mode k is **held** at a record when its mass p̂_k is ≥ ``hold_fraction``/K;
  ``modes_visited`` = |∪_t S_t| and ``modes_held`` = the median of |S_t| over the window (S_t the
  held set); **mode hopping** is modes_visited − modes_held ≥ ``hop_modes``: over time the
  generator visits more modes than it typically holds at once (the held set rotates; a mode that
  flickers at the threshold adds at most one); ``mode_turnover`` is the mean Jaccard distance
  between consecutive held sets;
- the **oscillation** of the mode mass that varies most in the window (smoothed by a moving average
  over 3 records): ``cycles`` full periods around its window mean (:func:`gamedyn.diagnose`'s
  crossing count), ``period`` and ``amplitude``;
- the **trend of the fit**: with g the least-squares slope of log ``energy`` (the energy distance
  to the data) against the step over the window and W the window's length in steps,
  ``energy_trend`` = exp(g·W), the factor by which the distance changed across the window.

The first that holds: stopped (non-finite or blow-up) → **diverged**; mode hopping, or an
oscillation of ≥ ``min_cycles`` periods with amplitude ≥ ``cycle_mass``/K → **cycling**;
movement ≤ ``settle_tv`` and 1/``settle_energy`` ≤ energy_trend ≤ ``settle_energy`` →
**converged** (the generated distribution no longer changes, neither between modes nor in its
distance to the data); otherwise **drifting** (still moving: e.g. samples still tightening
around their modes, energy_trend < 1/settle_energy, or mass still shifting between modes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runaxis
from .component import Param
from .diagnose import masked_slope, oscillation

Tensor = torch.Tensor

#: Thresholds of the fit and dynamics labels (see the module docstring); games expose them as params.
FIT_DEFAULTS: dict[str, float] = {
    "fit_modes": 0.9,
    "fit_quality": 0.5,
    "fit_kl": 0.1,
    "collapse_kl": 0.25,
    "late_fraction": 0.5,
    "hold_fraction": 0.25,
    "hop_modes": 2.0,
    "settle_tv": 0.05,
    "settle_energy": 1.25,
    "cycle_mass": 0.5,
    "min_cycles": 3.0,
}
FIT_LABELS = ("fit", "underfit", "mode_collapse", "n/a")
#: The thresholds as a game's parameters (a study sets them under ``game:``).
THRESHOLD_PARAMS: dict[str, Param] = {
    "fit_modes": Param(float, FIT_DEFAULTS["fit_modes"], "fit: modes captured ≥ this × K",
                       low=0.0, high=1.0),
    "fit_quality": Param(float, FIT_DEFAULTS["fit_quality"], "fit: high-quality fraction ≥ this",
                         low=0.0, high=1.0),
    "fit_kl": Param(float, FIT_DEFAULTS["fit_kl"], "fit: KL / log K ≤ this", low=0.0),
    "collapse_kl": Param(float, FIT_DEFAULTS["collapse_kl"], "mode_collapse: KL / log K ≥ this",
                         low=0.0),
    "late_fraction": Param(float, FIT_DEFAULTS["late_fraction"], "dynamics: late window fraction",
                           low=0.0, high=1.0, low_open=True),
    "hold_fraction": Param(float, FIT_DEFAULTS["hold_fraction"],
                           "dynamics: a mode is held with a share p̂_k ≥ this / K", low=0.0),
    "hop_modes": Param(float, FIT_DEFAULTS["hop_modes"],
                       "dynamics: hopping when modes visited − typically held at once ≥ this",
                       low=0.0, low_open=True),
    "settle_tv": Param(float, FIT_DEFAULTS["settle_tv"],
                       "dynamics: converged when the median TV movement ≤ this", low=0.0),
    "settle_energy": Param(float, FIT_DEFAULTS["settle_energy"],
                           "dynamics: converged when the energy distance changed by a factor within "
                           "[1/this, this] over the late window", low=1.0),
    "cycle_mass": Param(float, FIT_DEFAULTS["cycle_mass"],
                        "dynamics: cycling oscillation amplitude ≥ this / K", low=0.0),
    "min_cycles": Param(float, FIT_DEFAULTS["min_cycles"], "dynamics: cycling needs ≥ this many periods",
                        low=0.0, low_open=True),
}


# --- metrics ---------------------------------------------------------------------------------

def nearest_modes(x: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
    """Each sample's nearest mode index [R, n] and its distance to that mean [R, n]."""
    d2 = ((x[:, :, None, :] - means[None, None]) ** 2).sum(-1)          # [R, n, K]
    best, idx = d2.min(-1)
    return idx, best.clamp_min(0).sqrt()


def _kl(hist: Tensor, ratio: Tensor) -> Tensor:
    """KL(p̂ ‖ p) = Σ_k p̂_k log(p̂_k / p_k) per run [R], from ``hist`` p̂ [R, K] and ``ratio``
    p̂ / p, with 0 log 0 = 0; the logarithm computed in whole vector blocks
    (:func:`gamedyn.runaxis.whole_blocks`), so that a run's value does not depend on its batch."""
    return torch.where(hist > 0, hist * runaxis.whole_blocks(torch.log, ratio),
                       torch.zeros_like(hist)).sum(1)


def mode_metrics(x: Tensor, means: Tensor, sigma: float, radius: float = 3.0) -> dict[str, Tensor]:
    """Mode metrics of samples ``x`` [R, n, d] against ``means`` [K, d] (see the module docstring):
    ``modes`` [R], ``high_quality`` [R], ``kl`` [R], ``hist`` [R, K] (the nearest-mode histogram
    p̂ of all samples) and ``hq_mass`` [R, K] (the high-quality fraction per mode, summing to
    ``high_quality``)."""
    R, n, _ = x.shape
    K = means.shape[0]
    idx, dist = nearest_modes(x, means)
    good = (dist <= radius * sigma).to(x.dtype)                         # [R, n]
    onehot = torch.zeros(R, n, K, dtype=x.dtype, device=x.device).scatter_(2, idx[..., None], 1.0)
    hist = onehot.mean(1)                                               # [R, K]
    mass = (onehot * good[..., None]).mean(1)                           # [R, K]
    return {"modes": (mass > 0).sum(1).to(x.dtype), "high_quality": good.mean(1),
            "kl": _kl(hist, hist * K), "hist": hist, "hq_mass": mass}


def mean_distance(x: Tensor, y: Tensor, chunk: int = 512) -> Tensor:
    """E‖X − Y‖ over all pairs of ``x`` [R, n, d] and ``y`` [R, m, d] → [R] (in row chunks, so
    memory stays O(R·chunk·m))."""
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, x.shape[1], chunk):
        # row by row (last axis, then the chunk's rows): the same order for a run whatever R
        total = total + torch.cdist(x[:, i:i + chunk], y).sum(2).sum(1)
    return total / (x.shape[1] * y.shape[1])


def energy_distance(x: Tensor, y: Tensor, yy: Tensor | None = None) -> Tensor:
    """√(2 E‖X−Y‖ − E‖X−X′‖ − E‖Y−Y′‖) between the empirical distributions of ``x`` [R, n, d] and
    ``y`` [R, m, d] → [R]. ``yy`` = E‖Y−Y′‖ may be passed when ``y`` is fixed (the data sample)."""
    yy = mean_distance(y, y) if yy is None else yy
    e2 = 2.0 * mean_distance(x, y) - mean_distance(x, x) - yy
    return e2.clamp_min(0).sqrt()


def wasserstein1(x: Tensor, y: Tensor) -> Tensor:
    """W1 between the empirical distributions of 1-D samples ``x``, ``y`` [R, n] (equal sizes):
    the mean |x₍ᵢ₎ − y₍ᵢ₎| of the sorted samples (= ``scipy.stats.wasserstein_distance``)."""
    if x.shape != y.shape:
        raise ValueError(f"wasserstein1 needs equal sample sizes: got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x.sort(-1).values - y.sort(-1).values).abs().mean(-1)


def gaussian_moments(f: Tensor) -> tuple[Tensor, Tensor]:
    """The mean μ [R, d] and covariance Σ [R, d, d] (unbiased, 1/(n − 1)) of samples ``f``
    [R, n, d], per run."""
    mu = f.mean(1)
    c = f - mu[:, None]
    return mu, c.mT @ c / (f.shape[1] - 1)


def psd_sqrt(s: Tensor) -> Tensor:
    """The symmetric square root V diag(√max(λ, 0)) Vᵀ of symmetric positive semi-definite
    matrices ``s`` [R, d, d] (``torch.linalg.eigh``, batched; rounding's tiny negative eigenvalues
    clamped to 0)."""
    lam, v = torch.linalg.eigh(s)
    return (v * lam.clamp_min(0).sqrt()[..., None, :]) @ v.mT


def frechet_reference(y: Tensor) -> dict[str, Tensor]:
    """What :func:`frechet_distance` needs of a fixed sample ``y`` [R, m, d] (the data's, computed
    once), in float64: its mean ``mean`` [R, d], its covariance's trace ``trace`` [R], and either
    the square root of its covariance ``sqrt`` [R, d, d] (d ≤ m) or, with more dimensions than
    samples, its centred samples scaled by 1/√(m − 1), ``centred`` [R, m, d]."""
    y = y.to(torch.float64)
    mu, m = y.mean(1), y.shape[1]
    if y.shape[2] <= m:
        cov = gaussian_moments(y)[1]
        return {"mean": mu, "trace": cov.diagonal(0, -2, -1).sum(-1), "sqrt": psd_sqrt(cov)}
    b = (y - mu[:, None]) / math.sqrt(m - 1)
    return {"mean": mu, "trace": (b * b).sum((1, 2)), "centred": b}


def frechet_distance(x: Tensor, y: Tensor | None = None, ref: dict[str, Tensor] | None = None
                     ) -> Tensor:
    """The squared Fréchet distance between Gaussians fitted to samples ``x`` [R, n, d] and ``y``
    [R, m, d] (or ``ref`` = :func:`frechet_reference` of ``y``), all runs at once → [R]:

        d² = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^{1/2}),

    the squared 2-Wasserstein distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (Dowson & Landau 1982, J.
    Multivariate Anal. 12(3):450–455), with the samples' means and unbiased covariances.

    Σ₁Σ₂ is similar to the symmetric positive semi-definite S = Σ₂^{1/2} Σ₁ Σ₂^{1/2}, so
    tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(S): one batched ``torch.linalg.eigh`` (eigenvalues only) of [R, d, d]
    per call, Σ₂^{1/2} of the fixed sample coming with ``ref``. With more dimensions than data
    samples (d > m), the same trace in sample space: with A = (X₁ − μ₁)/√(n − 1) [n, d] and
    B = (X₂ − μ₂)/√(m − 1) [m, d], Σ₁Σ₂ = AᵀA BᵀB has the nonzero eigenvalues of G Gᵀ, G = A Bᵀ
    [n, m], so tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(G Gᵀ) (the smaller of G Gᵀ, GᵀG): O(n m d + n³) instead of
    O(d³), and no d × d matrix. Rounding's tiny negative eigenvalues are clamped to 0, and d² to
    ≥ 0. Computed in float64, returned in ``x``'s dtype.

    Heusel et al. 2017 (arXiv 1706.08500) use it on the features of an Inception network (FID);
    here it is applied to other feature spaces (``fit.frechet``: a small network's features, not
    Inception-FID; ``fit.frechet_pixels``: the pixels), whose values are not comparable to
    published FIDs. It is a biased estimate (larger on average for smaller samples), so values
    compare only at equal sample sizes; with fewer samples than dimensions the covariances are
    singular and the distance stays defined."""
    if ref is None:
        ref = frechet_reference(y)
    dtype, x = x.dtype, x.to(torch.float64)
    mu = x.mean(1)
    if "sqrt" in ref:
        cov = gaussian_moments(x)[1]
        trace = cov.diagonal(0, -2, -1).sum(-1)
        s = ref["sqrt"] @ cov @ ref["sqrt"]
    else:
        a = (x - mu[:, None]) / math.sqrt(x.shape[1] - 1)
        trace = (a * a).sum((1, 2))
        g = a @ ref["centred"].mT                                       # [R, n, m]
        s = g @ g.mT if g.shape[1] <= g.shape[2] else g.mT @ g
    lam = torch.linalg.eigvalsh(0.5 * (s + s.mT))
    d2 = ((mu - ref["mean"]) ** 2).sum(-1) + trace + ref["trace"] - 2.0 * lam.clamp_min(0).sqrt().sum(-1)
    return d2.clamp_min(0).to(dtype)


# --- classes of labelled data (images) --------------------------------------------------------

#: Version of the classifier cache files' layout; part of their key (bump it to retire old files).
CLASSIFIER_FORMAT = 1
#: The evaluator of the class metrics: ``sklearn.linear_model.LogisticRegression(**LOGISTIC)``.
LOGISTIC: dict[str, Any] = {"C": 1.0, "max_iter": 2000, "random_state": 0}
#: The feature network of the Fréchet distance: ``sklearn.neural_network.MLPClassifier(**FEATURE_NET)``.
FEATURE_NET: dict[str, Any] = {"hidden_layer_sizes": (64,), "activation": "relu", "solver": "adam",
                               "alpha": 1e-4, "learning_rate_init": 1e-3, "max_iter": 300,
                               "random_state": 0}
_ARRAYS = ("coef", "intercept", "classes", "accuracy", "hidden_weight", "hidden_bias", "out_weight",
           "out_bias", "feature_accuracy")


def cache_dir() -> Path:
    """gamedyn's on-disk cache: ``$GAMEDYN_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/gamedyn``
    (an absolute ``XDG_CACHE_HOME``, as the XDG base directory specification asks), else
    ``~/.cache/gamedyn``."""
    if os.environ.get("GAMEDYN_CACHE_DIR"):
        return Path(os.environ["GAMEDYN_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) / "gamedyn" if os.path.isabs(xdg) else Path.home() / ".cache" / "gamedyn"


@dataclasses.dataclass(frozen=True)
class Classifier:
    """The evaluators of labelled data (:func:`classifier`): a linear classifier, logits
    ℓ = x Wᵀ + b over the C classes, for the class metrics; the data's class frequencies ``prior``
    p; and a one-hidden-layer network whose hidden activations h = max(0, x W₁ᵀ + b₁) are the
    features of the Fréchet distance (:func:`class_features`). Accuracies are on held-out data
    (``model``: the linear classifier as a scikit-learn ``LogisticRegression``, fitted or rebuilt
    from the cached weights; ``path``: its cache file, None where it could not be written)."""

    coef: np.ndarray             # W [C, size] (one row for two classes: scikit-learn's layout)
    intercept: np.ndarray        # b [C]
    prior: np.ndarray            # p [C], the data's label frequencies
    accuracy: float              # the linear classifier's, on the held-out fifth
    model: Any
    hidden_weight: np.ndarray    # W₁ [H, size]
    hidden_bias: np.ndarray      # b₁ [H]
    out_weight: np.ndarray       # W₂ [C, H] (one row for two classes)
    out_bias: np.ndarray         # b₂ [C]
    feature_accuracy: float      # the feature network's, on the held-out fifth
    path: Path | None = None


_CLASSIFIERS: dict[str, Classifier] = {}


def classifier_key(x: np.ndarray, y: np.ndarray) -> str:
    """The cache key of the evaluators of ``x``, ``y``: SHA-256 of the arrays (dtype, shape, bytes),
    the settings :data:`LOGISTIC`, :data:`FEATURE_NET` and :data:`CLASSIFIER_FORMAT`."""
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    head = json.dumps({"format": CLASSIFIER_FORMAT, "logistic": LOGISTIC, "features": FEATURE_NET,
                       "x": [x.dtype.str, list(x.shape)], "y": [y.dtype.str, list(y.shape)]},
                      sort_keys=True, default=str)
    h = hashlib.sha256(head.encode())
    h.update(x.tobytes())
    h.update(y.tobytes())
    return h.hexdigest()


def classifier(x: np.ndarray, y: np.ndarray) -> Classifier:
    """The evaluators of data ``x`` [N, …] with labels ``y`` [N], fitted on the flattened samples i
    with i mod 5 ≠ 0; the accuracies are measured on the others.

    - Class metrics: multinomial logistic regression (scikit-learn's ``LogisticRegression``,
      L-BFGS, C = 1, ``random_state=0``; :data:`LOGISTIC`). On scikit-learn's digits: 96.9 % held
      out. (The evaluator of Metz et al. 2017 and PacGAN is a trained MNIST network; a linear one on
      8 × 8 digits is enough to tell classes apart and costs one matmul per record.)
    - Features of the Fréchet distance: a linear classifier has no hidden layer, and its C logits
      are a poor feature space (10 dimensions, blind to whatever does not separate classes). So a
      second evaluator, scikit-learn's ``MLPClassifier`` with one hidden layer of 64 ReLU units
      (Adam, ``random_state=0``, at most 300 epochs; :data:`FEATURE_NET`), is fitted on the same
      split, and its hidden activations are the features. On digits it is the better classifier,
      98.1 % held out (it stops by its tolerance at epoch 252), and trains in about 1 s on one
      core. It is not made the class metrics' evaluator too, which would change their recorded
      values.

    Fitted once per data and settings, then kept in memory and on disk: an ``.npz`` of the weights
    and accuracies under ``cache_dir()/classifiers/<classifier_key>.npz`` (:func:`cache_dir`),
    written atomically (a temporary file in the same folder, then ``os.replace``) and read back
    instead of fitting again. A cache file that is unreadable or does not hold what its key says
    is ignored, fitted anew and overwritten; a cache folder that cannot be written only costs the
    refit next time. (The key does not hold scikit-learn's version: a file stays in use across
    upgrades, so the recorded numbers do not move with them.)"""
    key = classifier_key(x, y)
    if key not in _CLASSIFIERS:
        classes, counts = np.unique(y, return_counts=True)
        flat = np.ascontiguousarray(x).reshape(len(x), -1)
        path = cache_dir() / "classifiers" / f"{key}.npz"
        arrays = _load_classifier(path, key, classes, flat.shape[1])
        if arrays is None:
            arrays = _train_classifier(flat, y)
            if not _save_classifier(path, key, arrays):
                path = None
        _CLASSIFIERS[key] = Classifier(
            arrays["coef"], arrays["intercept"], counts / len(y), float(arrays["accuracy"]),
            _logistic_model(arrays), arrays["hidden_weight"], arrays["hidden_bias"],
            arrays["out_weight"], arrays["out_bias"], float(arrays["feature_accuracy"]), path)
    return _CLASSIFIERS[key]


def _train_classifier(flat: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Fit both evaluators of :func:`classifier` on flat samples [N, size]; their weights and
    held-out accuracies as the arrays of a cache file."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    held = np.arange(len(flat)) % 5 == 0
    classes = np.unique(y)
    trained = np.unique(y[~held])
    if not np.array_equal(classes, trained) or len(classes) < 2:
        missing = sorted(set(classes.tolist()) - set(trained.tolist()))
        raise ValueError(f"classes {missing or classes.tolist()}: expected two classes or more, "
                         f"each with a training sample (the samples i with i mod 5 != 0)")
    linear = LogisticRegression(**LOGISTIC).fit(flat[~held], y[~held])
    with warnings.catch_warnings():   # a fixed number of epochs: not converging is not an error
        warnings.simplefilter("ignore", ConvergenceWarning)
        net = MLPClassifier(**FEATURE_NET).fit(flat[~held], y[~held])
    return {"coef": linear.coef_.copy(), "intercept": linear.intercept_.copy(), "classes": classes,
            "accuracy": np.float64(linear.score(flat[held], y[held])),
            "hidden_weight": net.coefs_[0].T.copy(), "hidden_bias": net.intercepts_[0].copy(),
            "out_weight": net.coefs_[1].T.copy(), "out_bias": net.intercepts_[1].copy(),
            "feature_accuracy": np.float64(net.score(flat[held], y[held]))}


def _logistic_model(arrays: dict[str, np.ndarray]) -> Any:
    """The linear evaluator as a scikit-learn ``LogisticRegression`` with the given weights (its
    ``predict`` and ``predict_proba`` are scikit-learn's own)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(**LOGISTIC)
    model.coef_, model.intercept_ = arrays["coef"].copy(), arrays["intercept"].copy()
    model.classes_, model.n_features_in_ = arrays["classes"].copy(), arrays["coef"].shape[1]
    return model


def _load_classifier(path: Path, key: str, classes: np.ndarray, size: int
                     ) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file when it is readable and holds the evaluators of ``key`` (format,
    key, classes, consistent finite shapes); None otherwise (absent, truncated, corrupt, stale)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in (*_ARRAYS, "key", "format")}
        C = len(classes)
        rows = 1 if C == 2 else C               # scikit-learn's layout of binary models
        H = arrays["hidden_weight"].shape[0]
        shapes = {"coef": (rows, size), "intercept": (rows,), "classes": (C,), "accuracy": (),
                  "hidden_weight": (H, size), "hidden_bias": (H,), "out_weight": (rows, H),
                  "out_bias": (rows,), "feature_accuracy": ()}
        ok = (str(arrays["key"]) == key and int(arrays["format"]) == CLASSIFIER_FORMAT and H >= 1
              and all(arrays[k].shape == s for k, s in shapes.items())
              and np.array_equal(arrays["classes"], classes)
              and all(np.isfinite(arrays[k]).all() for k in shapes if k != "classes")
              and all(0.0 <= float(arrays[k]) <= 1.0 for k in ("accuracy", "feature_accuracy")))
    except Exception:   # any unreadable file (not a zip, a bad header, a missing array...): refit
        return None
    return arrays if ok else None


def _save_classifier(path: Path, key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Write the cache file atomically (a temporary file beside it, then ``os.replace``); False
    (and nothing left behind) where the folder cannot be written."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.str_(key), format=np.int64(CLASSIFIER_FORMAT), **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError as e:
        warnings.warn(f"gamedyn: could not cache the classifier in {path.parent} ({e}); it will be "
                      f"fitted again next time", RuntimeWarning, stacklevel=3)
        return False
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def class_features(x: Tensor, hidden_weight: Tensor, hidden_bias: Tensor) -> Tensor:
    """The feature network's hidden activations h = max(0, x W₁ᵀ + b₁) [R, n, H] of samples ``x``
    [R, n, size] (all runs in one matmul): the feature space of ``fit.frechet``."""
    return torch.relu(x @ hidden_weight.T + hidden_bias)


def class_metrics(x: Tensor, coef: Tensor, intercept: Tensor, prior: Tensor, hold_fraction: float,
                  confidence: float) -> dict[str, Tensor]:
    """Class metrics of generated samples ``x`` [R, n, size] under a linear classifier (W ``coef``
    [C, size], b ``intercept`` [C]; all runs in one matmul), against the data's class frequencies
    ``prior`` p [C] — the Stacked-MNIST measures of Metz et al. 2017 (arXiv 1611.02163), VEEGAN
    (arXiv 1705.07761) and PacGAN (arXiv 1712.04086), with classes as modes:

    - ``hist`` [R, C]: p̂_k, the share of samples classified k (argmax_k ℓ_k, ℓ = x Wᵀ + b);
    - ``classes_covered`` [R]: the classes k with p̂_k ≥ ``hold_fraction``/C (the same share that
      makes a mode *held* in :func:`sample_dynamics`);
    - ``class_kl`` [R]: KL(p̂ ‖ p) = Σ_k p̂_k log(p̂_k / p_k) (0 log 0 = 0): 0 when the classes
      come in the data's proportions, log(1/p_k) ≈ log C when every sample is class k;
    - ``confident`` [R]: the share of samples whose top class probability max_k softmax(ℓ)_k is
      ≥ ``confidence`` (a sample quality measure, as an Inception score's sharpness; for held-out
      digits at 0.8: 0.90)."""
    logits = x @ coef.T + intercept                                     # [R, n, C]
    R, n, C = logits.shape
    onehot = torch.zeros_like(logits).scatter_(2, logits.argmax(-1, keepdim=True), 1.0)
    hist = onehot.mean(1)                                               # [R, C]
    top = torch.softmax(logits, -1).amax(-1)                            # [R, n]
    return {"hist": hist, "classes_covered": (hist >= hold_fraction / C).sum(1).to(x.dtype),
            "class_kl": _kl(hist, hist / prior), "confident": (top >= confidence).to(x.dtype).mean(1)}


# --- labels ----------------------------------------------------------------------------------

def last_valid(series: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Each run's value [R] at its last valid record, ``series[r, n_valid[r] − 1]`` of ``series``
    [R, T] (NaN where the run has none)."""
    last = np.maximum(n_valid - 1, 0)
    v = series[np.arange(series.shape[0]), last]
    return np.where(n_valid > 0, v, np.nan)


def fit_labels(modes: np.ndarray, high_quality: np.ndarray, kl: np.ndarray, n_modes: int,
               th: dict[str, float] | None = None) -> np.ndarray:
    """The fit label [R] from final ``modes``, ``high_quality``, ``kl`` [R] (see the module
    docstring for the rule); NaN metrics give ``n/a``."""
    th = {**FIT_DEFAULTS, **(th or {})}
    kappa = kl / math.log(n_modes) if n_modes > 1 else np.zeros_like(kl)
    label = np.full(len(modes), "underfit", dtype=object)
    with np.errstate(invalid="ignore"):
        label[kappa >= th["collapse_kl"]] = "mode_collapse"
        fit = (modes >= th["fit_modes"] * n_modes) & (high_quality >= th["fit_quality"]) \
            & (kappa <= th["fit_kl"])
    label[fit] = "fit"
    label[~(np.isfinite(modes) & np.isfinite(high_quality) & np.isfinite(kl))] = "n/a"
    return label


def sample_dynamics(steps: np.ndarray, mass: np.ndarray, n_valid: np.ndarray, stopped: np.ndarray,
                    th: dict[str, float] | None = None, energy: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
    """The dynamics label and evidence [R] of a neural game, from the mode histograms ``mass``
    [R, T, K] (each record's p̂) and the energy distances ``energy`` [R, T] (None: not used) at
    ``steps`` [T] (see the module docstring for the rule)."""
    th = {**FIT_DEFAULTS, **(th or {})}
    R, T, K = mass.shape
    last = np.maximum(n_valid - 1, 0)
    start = np.minimum(np.floor(last * (1.0 - th["late_fraction"])).astype(int), np.maximum(last - 1, 0))
    t_idx = np.arange(T)
    window = (t_idx[None, :] >= start[:, None]) & (t_idx[None, :] <= last[:, None]) \
        & (n_valid[:, None] > 0)

    m = np.nan_to_num(mass, nan=0.0)
    tv = 0.5 * np.abs(np.diff(m, axis=1)).sum(-1)                        # [R, T-1]
    pair = window[:, 1:] & window[:, :-1]
    tv_w = np.where(pair, tv, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN windows: movement NaN
        movement = np.nanmedian(tv_w, 1) if T > 1 else np.full(R, np.nan)

        held = (m >= th["hold_fraction"] / K) & window[:, :, None]        # [R, T, K]
        visited = held.any(1).sum(1)
        n_held = np.where(window, held.sum(2), np.nan)
        held_typ = np.nan_to_num(np.nanmedian(n_held, 1), nan=0.0)
        union = (held[:, 1:] | held[:, :-1]).sum(2)
        inter = (held[:, 1:] & held[:, :-1]).sum(2)
        jac = np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0)
        turnover = np.where(pair.any(1), (jac * pair).sum(1) / np.maximum(pair.sum(1), 1), np.nan)
        hopping = (visited - held_typ) >= th["hop_modes"]

        # the most varying mode mass, smoothed over 3 records, and its oscillation
        smooth = m.copy()
        if T >= 3:
            smooth[:, 1:-1] = (m[:, :-2] + m[:, 1:-1] + m[:, 2:]) / 3.0
        period, amplitude, cycles = oscillation(np.asarray(steps, dtype=float), smooth, window)
        oscillating = (cycles >= th["min_cycles"]) & (amplitude >= th["cycle_mass"] / K)

        if energy is not None:
            steps_f = np.asarray(steps, dtype=float)
            loge = np.log(np.maximum(np.where(window, energy, 1.0), 1e-300))
            W = steps_f[last] - steps_f[start]
            trend = np.exp(masked_slope(steps_f, np.nan_to_num(loge), window) * W)
        else:
            trend = np.ones(R)
        settled = (trend <= th["settle_energy"]) & (trend >= 1.0 / th["settle_energy"])
        label = np.full(R, "drifting", dtype=object)
        label[(movement <= th["settle_tv"]) & settled] = "converged"
        label[hopping | oscillating] = "cycling"
        label[stopped] = "diverged"
    return {"dynamics": label, "movement": movement, "energy_trend": trend,
            "modes_visited": visited.astype(float), "modes_held": held_typ,
            "mode_turnover": turnover, "mode_hopping": hopping,
            "period": period, "amplitude": amplitude, "cycles": cycles}
