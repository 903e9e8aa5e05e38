"""A GAN whose players are the user's own ``torch.nn.Module`` classes, on real data."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from .. import costs, data, fit, modules
from ..component import Param
from ..errors import StudyError, unknown
from ..random import Streams
from .base import GAMES, Params, SampleGame, Tensor

#: Stream id of the fixed evaluation sample (latents, data), apart from training and recording.
EVAL_STREAM = 0x5EED_E7A2
LATENT_DISTS = ("normal", "uniform")
LATENT_DEFAULT = {"dim": 16, "dist": "normal"}
#: Losses whose discriminator output is a logit (D = σ(a)); for the others it is a score.
_LOGIT_LOSSES = ("minimax", "non_saturating", "maximum_likelihood")
#: ``snapshots``: its keys, the images kept per run and step by default, and the column's format tag.
SNAPSHOT_KEYS = ("steps", "images")
SNAPSHOT_IMAGES = 16
SNAPSHOTS_FORMAT = "gamedyn-snapshots 1"
_SNAPSHOTS_ACCEPTED = ("{steps: [record steps, e.g. 0, 100, 200], images: n (default 16, at most "
                       "eval_samples)}")
#: ``diagnostics: variance``: per-sample gradients are computed this many numbers per run at a time
#: (samples per chunk = this // generator parameters: set by the network, never by the batch, so a
#: run's numbers do not depend on its batch-mates).
VARIANCE_CHUNK = 2**20
#: The recorded variables of ``diagnostics: variance``.
VARIANCE_METRICS = ("var.rel", "var.ess", "var.top1", "var.mean_norm")


@GAMES.register("module_gan")
class ModuleGan(SampleGame):
    """A GAN between any ``nn.Module`` generator and discriminator, stepped many runs at once.

    Keys::

        generator: {module: nets.py, class: Generator, kwargs: {latent: 16}}
        discriminator: {module: nets.py, class: Discriminator, kwargs: {}}
        latent: {dim: 16, dist: normal}      # z ~ N(0, I) or U(−1, 1]^dim, per run from its stream
        data: digits                        # or {file: my.npz}, {mixture: ring}: gamedyn.data
        loss: non_saturating                # minimax, maximum_likelihood, wgan, hinge, relativistic
        batch: 64                           # real and generated samples per loss evaluation

    The players are :class:`gamedyn.modules.BatchedModule` objects (``torch.func`` over the run axis; each
    run's weights the class's own initialisation under its seed; nn.Dropout masks from each run's
    stream, metrics in eval mode; BatchNorm with running statistics refused with a one-line error).
    The generator maps latents [n, dim] to samples shaped like the data's ([n, *shape], or
    flattened [n, size]: digits [n, 1, 8, 8] or [n, 64]); the discriminator maps such samples to
    one output a per sample, [n] or [n, 1]. Both are checked once when the study is validated,
    before anything runs.

    Objective (:func:`gamedyn.costs.gan_losses`, :data:`gamedyn.costs.NAMED_LOSSES`): with logits a
    (D = σ(a)), the discriminator maximises V = E_{p_d} log σ(a) + E_{p_g} log(1 − σ(a)) (Goodfellow
    et al. 2014, arXiv 1406.2661) and the generator minimises E_z f(a(G(z))) for the cost named by
    ``loss``: ``minimax`` f = log(1 − D) (recorded as V), ``non_saturating`` f = −log D,
    ``maximum_likelihood`` f = −D/(1 − D) (Goodfellow 2014, arXiv 1412.6515); ``wgan`` (Arjovsky et
    al. 2017, arXiv 1701.07875; pair it with regularizer ``wgan_gp`` or ``clip``), ``hinge`` (Lim &
    Ye 2017, arXiv 1705.02894) and ``relativistic``, the pairing loss of R3GAN (Huang et al. 2024,
    arXiv 2501.05441; pair it with ``r1`` and ``r2``). Every evaluation draws a fresh minibatch of
    ``batch`` data samples (with replacement) and ``batch`` latents from the run's own stream.

    Samples reach the regularizers flattened, [R, n, size] (so R1/R2, WGAN-GP and gradient-norm
    penalties take ‖∇ₓD‖ over every pixel); :meth:`disc_logit` reshapes them for the discriminator.

    Recorded metrics, on a fixed evaluation sample (``eval_samples`` latents and data samples per
    run, from a stream of their own, the same at every record): ``D.real``, ``D.fake`` (the mean
    D = σ(a) on data and samples; for wgan, hinge and relativistic the mean output a) and
    ``fit.energy``, the energy distance between generated and data samples in data space (pixels
    for images; Székely & Rizzo 2013), and ``fit.frechet_pixels``, the squared Fréchet distance
    ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}) between Gaussians fitted to the flattened generated
    and data samples (Dowson & Landau 1982; :func:`gamedyn.fit.frechet_distance`). With labelled
    data, the class metrics of :func:`gamedyn.fit.class_metrics` under the data's classifier
    (:func:`gamedyn.fit.classifier`, fitted once and cached on disk; mode counting with a
    classifier as in Metz et al. 2017, arXiv 1611.02163): ``fit.classes_covered`` (classes holding
    at least ``hold_fraction``/C of the samples), ``fit.class_kl`` = KL(p̂ ‖ p) of the generated
    class histogram p̂ from the data's label frequencies p, ``fit.confident`` (the share of samples
    whose top class probability is ≥ ``class_confidence``) and the class histogram ``fit.mass[k]``,
    from which :meth:`diagnose_fit` decides ``fit`` and ``dynamics``; and ``fit.frechet``, the same distance
    on the 64 hidden ReLU features of a one-hidden-layer network trained on the labels
    (:func:`gamedyn.fit.class_features`) — FID's construction (Heusel et al. 2017, arXiv
    1706.08500) on a small feature space of the data's own: not Inception-FID, not comparable to
    published FIDs. The thresholds (:data:`gamedyn.fit.THRESHOLD_PARAMS`, ``class_confidence``) are
    parameters. Without labels ``fit`` is n/a. All are computed for every run at once.

    With ``save_players`` (default), each run's final weights are kept in the runs table (column
    ``players``) and :meth:`gamedyn.results.Results.players` gives them back as modules of the
    user's classes.

    ``snapshots: {steps: [0, 100, 200], images: 16}`` (default: none) keeps, at those record steps,
    the generator's samples on the first ``images`` fixed evaluation latents of each run (the
    latents of the recorded metrics, so the same in every record and in a run alone or in any batch),
    and writes them into the runs table as the column ``snapshots`` (:func:`encode_snapshots`: JSON
    text, the images as float16, base64; with those of the final generator under the key
    ``final``); :func:`decode_snapshots` reads them, figure ``image_snapshots`` draws them. A
    mapping, not a list: a list under ``game:`` is a grid axis of the study. The steps must be
    record steps (0, every ``record_every`` steps, and the last step), which the game is not told
    when the study is validated: a step that is never recorded is missing from the column (listed
    under ``missing``) and the figure says so; the figure also leaves out steps after a run stopped.
    Images are kept when a record is evaluated eagerly, as every ``module_gan`` record is (its
    minibatches are drawn from the runs' streams, so its batches are never compiled): the recorder
    tells the game the step (``record_step``).

    ``diagnostics: variance`` (default ``none``: nothing more recorded, nothing more computed) also
    records the spread of the generator's minibatch gradient, the quantity behind Goodfellow's (2014,
    arXiv 1412.6515, §3) warning that the maximum-likelihood cost f = −D/(1 − D) = −e^{a} weighs a
    sample by e^{a} = D/(1 − D), so that the few samples the discriminator takes for data carry the
    gradient. On the fixed evaluation sample (z_i, x_i), i = 1…n (``eval_samples``), each sample's
    gradient g_i = ∇_θ ℓ_i of the generator's loss on the minibatch of that one sample
    (ℓ_i = f(a(G(z_i))) for the paper's costs; for the pairing losses the pair (x_i, z_i)), in all
    the generator's parameters θ, the discriminator held fixed, the networks in eval mode; computed
    with ``torch.func`` (``grad`` under ``vmap`` over the samples, under ``vmap`` over the run axis);
    ḡ = Σ g_i / n is the gradient of the n-sample loss:

    - ``var.rel`` = tr Ĉov[g_i] / ‖ḡ‖², with tr Ĉov = Σ‖g_i − ḡ‖² / (n − 1): the relative variance
      of a one-sample gradient (a minibatch of m divides it by m); gan1d's ``var.rel_mc``, with the
      mean estimated from the same samples;
    - ``var.ess`` = (Σ w_i)² / (n Σ w_i²), the effective-sample-size fraction of the samples' weights
      w_i = |∂ℓ_i/∂a_i| (|f′(a)|: D, 1 − D, e^{a} for minimax, non-saturating, maximum likelihood);
      gan1d's ``var.ess_mc``;
    - ``var.top1``: the share of Σ‖g_i‖ carried by the ⌈n/100⌉ largest ‖g_i‖ (0.01 if all samples
      weighed alike); gan1d's ``var.top1_mc``;
    - ``var.mean_norm`` = ‖ḡ‖.

    Each sample goes through both networks alone (a batch of one), so the networks must treat the
    samples of a batch independently: BatchNorm (batch statistics) is refused with this key.
    """

    params = {
        "generator": Param(dict, None, "the generator: " + modules.ACCEPTED),
        "discriminator": Param(dict, None, "the discriminator: " + modules.ACCEPTED),
        "latent": Param(dict, LATENT_DEFAULT, "latents z [n, dim]: {dim: int, dist: normal | uniform}"),
        "data": Param(object, "digits", data.ACCEPTED),
        "loss": Param(str, "non_saturating", "objective, named by its generator cost",
                      choices=tuple(costs.NAMED_LOSSES)),
        "batch": Param(int, 64, "real and generated samples per loss evaluation", low=1),
        "eval_samples": Param(int, 256, "fixed evaluation sample size for the recorded metrics", low=2),
        "save_players": Param(bool, True, "keep each run's final weights (runs table column "
                                          "`players`; Results.players(run_id))"),
        "class_confidence": Param(float, 0.8, "labelled data: a sample is confidently classified when "
                                              "its top class probability is ≥ this", low=0.0, high=1.0),
        "snapshots": Param(object, None, "keep generated images at these record steps (runs table "
                                         "column `snapshots`; figure image_snapshots): "
                                         + _SNAPSHOTS_ACCEPTED),
        "diagnostics": Param(str, "none", "variance: also record the relative variance, effective "
                                          "sample size and top-1% share of the generator's per-sample "
                                          "gradients on the evaluation sample (var.*)",
                             choices=("none", "variance")),
        **fit.THRESHOLD_PARAMS,   # of the fit and dynamics labels (labelled data; classes as modes)
    }
    #: The step being recorded, told by the recorder before :meth:`metrics` (None: not a record).
    record_step: int | None = None

    @classmethod
    def resolve(cls, given: dict[str, Any], where: str) -> dict[str, Any]:
        out = super().resolve(given, where)
        for player in ("generator", "discriminator"):
            if out[player] is None:
                raise StudyError(f"{where}.{player}", f"missing: expected {modules.ACCEPTED}")
            out[player] = modules.validate_spec(out[player], f"{where}.{player}")
        out["latent"] = _latent(out["latent"], f"{where}.latent")
        out["data"] = data.validate(out["data"], f"{where}.data")
        out["snapshots"] = _snapshots(out["snapshots"], out["eval_samples"], f"{where}.snapshots")
        return out

    @classmethod
    def label_value(cls, key: str, value: Any) -> str:
        """Networks as ``Class(kwargs)``, a data file by its name, latents as ``dim dist``."""
        if key in ("generator", "discriminator"):
            return f"{value['class']}({', '.join(f'{k}={v}' for k, v in value['kwargs'].items())})"
        if key == "data" and isinstance(value, dict):
            return value["file"].rsplit("/", 1)[-1] if "file" in value else value["mixture"]
        if key == "latent":
            return f"{value['dim']} {value['dist']}"
        if key == "snapshots" and isinstance(value, dict):
            return f"{'/'.join(map(str, value['steps']))}×{value['images']}"
        return str(value)

    @classmethod
    def plugin_files(cls, config: dict) -> tuple[str, ...]:
        return tuple(config[p]["module"] for p in ("generator", "discriminator")
                     if config[p]["module"].endswith(".py"))

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.dataset = data.load(self.data)
        self.sampler = data.Sampler(self.dataset, dtype, device)
        self.gen_net = modules.BatchedModule(self.generator, "game.generator", dtype, device,
                                             streams=lambda: self.rng)   # dropout masks per run
        self.disc_net = modules.BatchedModule(self.discriminator, "game.discriminator", dtype, device,
                                              streams=lambda: self.rng)
        self.objective_name, self.gen_cost = costs.NAMED_LOSSES[self.loss]
        self.sample_shape = self._check_outputs()
        self.classifier = self._classifier()
        self._snapshots: dict[int, Tensor] = {}   # record step -> images [R, images, size], float16
        if self.diagnostics == "variance":
            self._check_per_sample()

    def _check_per_sample(self) -> None:
        """``diagnostics: variance`` passes each sample alone through the networks: refuse BatchNorm,
        which couples the samples of a batch (one line naming the key, the class and the layer)."""
        for net in (self.gen_net, self.disc_net):
            for layer, m in net.base.named_modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    raise StudyError("game.diagnostics", f"variance passes each sample alone through "
                                     f"the networks, and {net.cls.__name__} layer {layer!r} "
                                     f"({type(m).__name__}) couples the samples of a batch: use "
                                     f"nn.GroupNorm or nn.LayerNorm, or diagnostics: none")

    def _classifier(self) -> dict[str, Tensor] | None:
        """The evaluator of labelled data (:func:`gamedyn.fit.classifier`) as tensors W, b, p; None
        without labels. Sets ``features`` (the feature network's W₁, b₁, or None) and the held-out
        accuracies ``classifier_accuracy``, ``feature_accuracy`` (NaN without labels)."""
        self.features: dict[str, Tensor] | None = None
        self.classifier_accuracy = self.feature_accuracy = float("nan")
        if self.dataset.y is None:
            return None
        try:
            clf = fit.classifier(self.dataset.x, self.dataset.y)
        except ImportError:
            raise StudyError("game.data", f"{self.dataset.name}: class metrics need scikit-learn "
                                          f"(pip install scikit-learn)") from None
        except ValueError as e:
            raise StudyError("game.data", f"{self.dataset.name}: no classifier for its labels y: {e}"
                             ) from None
        as_t = lambda a: torch.as_tensor(a, dtype=self.dtype, device=self.device)  # noqa: E731
        self.classifier_accuracy, self.feature_accuracy = clf.accuracy, clf.feature_accuracy
        self.features = {"hidden_weight": as_t(clf.hidden_weight), "hidden_bias": as_t(clf.hidden_bias)}
        coef, intercept = clf.coef, clf.intercept
        if len(coef) == 1:  # two classes: scikit-learn keeps class 1's row; softmax of (0, wx + b)
            coef = np.concatenate([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros_like(intercept), intercept])
        return {"coef": as_t(coef), "intercept": as_t(intercept), "prior": as_t(clf.prior)}

    def _check_outputs(self) -> tuple[int, ...]:
        """The generator's per-sample output shape (the data's, or its flattening), after checking
        both networks on two inputs; a one-line StudyError otherwise."""
        n, dim = 2, self.latent["dim"]
        z = torch.zeros(n, dim, dtype=self.dtype, device=self.device)
        g = self.gen_net
        try:
            with torch.no_grad():
                x = g.base(z)
        except Exception as e:
            raise StudyError("game.generator", f"{g.cls.__name__} failed on latents of shape [{n}, {dim}] "
                                               f"(latent.dim = {dim}): {modules._first_line(e)}") from None
        shape, flat = self.dataset.shape, (self.dataset.size,)
        found = tuple(x.shape[1:]) if isinstance(x, Tensor) and x.dim() >= 1 and len(x) == n else None
        if found not in (shape, flat):
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise StudyError("game.generator", f"{g.cls.__name__} returned {got} for {n} latents; "
                                               f"expected [{n}, {', '.join(map(str, shape))}] or "
                                               f"[{n}, {flat[0]}] (data {self.dataset.name})")
        d = self.disc_net
        xr = torch.as_tensor(self.sampler.sample(Streams(torch.zeros(1, dtype=torch.int64)), n)[0])
        try:
            with torch.no_grad():
                a = d.base(xr.reshape(n, *found))
        except Exception as e:
            raise StudyError("game.discriminator", f"{d.cls.__name__} failed on samples of shape "
                                                   f"{[n, *found]}: {modules._first_line(e)}") from None
        if not isinstance(a, Tensor) or tuple(a.shape) not in ((n,), (n, 1)):
            got = list(a.shape) if isinstance(a, Tensor) else type(a).__name__
            raise StudyError("game.discriminator", f"{d.cls.__name__} returned {got} for {n} samples; "
                                                   f"expected one output per sample, [{n}] or [{n}, 1]")
        return found

    # --- the game ---------------------------------------------------------------------------

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"gen": self.gen_net.shapes(), "disc": self.disc_net.shapes()}

    def init_params(self, seeds: list[int]) -> Params:
        return {"gen": self.gen_net.init_params(seeds, 1), "disc": self.disc_net.init_params(seeds, 2)}

    def latents(self, rng: Streams, n: int) -> Tensor:
        """n latents per run [R, n, dim]: N(0, I) or U(−1, 1]^dim from ``rng``."""
        dim = self.latent["dim"]
        if self.latent["dist"] == "normal":
            return rng.fast_normal(n, dim, dtype=self.dtype)
        return 2.0 * rng.fast_uniform(n, dim, dtype=self.dtype) - 1.0

    def generate(self, params: Params, z: Tensor) -> Tensor:
        """G(z) for latents [R, n, dim], flattened to [R, n, size]."""
        x = self.gen_net(params["gen"], z)
        return x.reshape(*z.shape[:2], -1)

    def disc_logit(self, params: Params, x: Tensor) -> Tensor:
        """The discriminator's output a(x) [R, n] for flat samples ``x`` [R, n, size]."""
        R, n = x.shape[:2]
        return self.disc_net(params["disc"], x.reshape(R, n, *self.sample_shape)).reshape(R, n)

    def real_samples(self, n_runs: int) -> tuple[Tensor, Tensor]:
        x = self.sampler.sample(self.rng, self.batch)
        return self.minibatch(x)

    def fake_samples(self, params: Params) -> tuple[Tensor, Tensor]:
        x = self.generate(params, self.latents(self.rng, self.batch))
        return self.minibatch(x)

    def objective(self, params, real, fake):
        (xr, wr), (xf, wf) = real, fake
        return costs.gan_losses(self.objective_name, self.disc_logit(params, xr), wr,
                                self.disc_logit(params, xf), wf, self.gen_cost)

    # --- metrics ----------------------------------------------------------------------------

    EVAL_STREAM = EVAL_STREAM

    def draw_evaluation(self, rng: Streams) -> dict[str, Tensor]:
        z = self.latents(rng, self.eval_samples)
        x = self.sampler.sample(rng, self.eval_samples)
        ev = {"z": z, "data": x, "data_dd": fit.mean_distance(x, x),
              "data_pixels": fit.frechet_reference(x)}   # the data's Gaussian, once
        if self.features is not None:
            ev["data_features"] = fit.frechet_reference(fit.class_features(x, **self.features))
        return ev

    def metrics(self, params: Params) -> dict[str, Tensor]:
        ev = self._evaluation()
        with torch.no_grad(), self.gen_net.evaluating(), self.disc_net.evaluating():   # eval mode
            x = self.generate(params, ev["z"])
            if self.snapshots is not None and self.record_step in self.snapshots["steps"]:
                self._snapshots[self.record_step] = self._snapshot(x)
            ar, af = self.disc_logit(params, ev["data"]), self.disc_logit(params, x)
            to_d = costs.sigmoid if self.loss in _LOGIT_LOSSES else (lambda a: a)
            out = {"D.real": to_d(ar).mean(1), "D.fake": to_d(af).mean(1),
                   "fit.energy": fit.energy_distance(x, ev["data"], ev["data_dd"]),
                   "fit.frechet_pixels": fit.frechet_distance(x, ref=ev["data_pixels"])}
            if self.features is not None:
                out["fit.frechet"] = fit.frechet_distance(fit.class_features(x, **self.features),
                                                          ref=ev["data_features"])
            if self.classifier is not None:
                m = fit.class_metrics(x, **self.classifier, hold_fraction=self.hold_fraction,
                                      confidence=self.class_confidence)
                out.update({f"fit.{k}": m[k] for k in ("classes_covered", "class_kl", "confident")})
                out.update({f"fit.mass[{k}]": m["hist"][:, k] for k in range(m["hist"].shape[1])})
            if self.diagnostics == "variance":
                out.update(self.gradient_variance(params, ev["z"], ev["data"], ar, af))
            return out

    def _snapshot(self, x: Tensor) -> Tensor:
        """The first ``images`` evaluation samples of every run [R, images, size], as float16 on
        the CPU."""
        return x[:, :self.snapshots["images"]].detach().to("cpu", torch.float16)

    def _sample_loss(self) -> Any:
        """ℓ(gen, disc, z_i, x_i): the generator's loss on the one-sample minibatch (z_i, x_i) for
        one run's parameters (plain functions of the user's modules, for ``torch.func``)."""
        G, D = self.gen_net.base, self.disc_net.base
        g_buffers, d_buffers = dict(G.named_buffers()), dict(D.named_buffers())
        shape = self.sample_shape

        def loss(gen: dict[str, Tensor], disc: dict[str, Tensor], zi: Tensor, xi: Tensor) -> Tensor:
            one = torch.ones(1, 1, dtype=zi.dtype, device=zi.device)
            xf = functional_call(G, (gen, g_buffers), (zi[None],)).reshape(1, *shape)
            af = functional_call(D, (disc, d_buffers), (xf,)).reshape(1, 1)
            ar = functional_call(D, (disc, d_buffers), (xi.reshape(1, *shape),)).reshape(1, 1)
            return costs.gan_losses(self.objective_name, ar, one, af, one, self.gen_cost)["gen"][0]

        return loss

    def per_sample_gradients(self, params: Params, z: Tensor, x_real: Tensor) -> dict[str, Tensor]:
        """g_i = ∇_θ ℓ_i for every run and sample ([R, n, *shape] per generator parameter): the
        gradient in the generator's parameters of its loss on the one-sample minibatch (z_i, x_i),
        the discriminator fixed (``torch.func.grad`` under ``vmap`` over samples, under ``vmap``
        over runs)."""
        per_run = vmap(grad(self._sample_loss()), in_dims=(None, None, 0, 0))
        gen = {k: v.detach() for k, v in params["gen"].items()}
        disc = {k: v.detach() for k, v in params["disc"].items()}
        return vmap(per_run, in_dims=(0, 0, 0, 0), randomness="error")(gen, disc, z, x_real)

    def _mean_gradient(self, params: Params, z: Tensor, x_real: Tensor) -> dict[str, Tensor]:
        """ḡ = ∇_θ (Σ_i ℓ_i / n) per run ([R, *shape] per generator parameter), in one backward."""
        loss = vmap(self._sample_loss(), in_dims=(None, None, 0, 0))
        gen = {k: v.detach() for k, v in params["gen"].items()}
        disc = {k: v.detach() for k, v in params["disc"].items()}
        mean = grad(lambda g, d, zz, xx: loss(g, d, zz, xx).mean())
        return vmap(mean, in_dims=(0, 0, 0, 0), randomness="error")(gen, disc, z, x_real)

    def gradient_variance(self, params: Params, z: Tensor, x_real: Tensor, a_real: Tensor,
                          a_fake: Tensor) -> dict[str, Tensor]:
        """The ``diagnostics: variance`` metrics (class docstring) of the per-sample gradients
        (:meth:`per_sample_gradients`) on latents ``z`` [R, n, dim] and data ``x_real`` [R, n, …],
        given the discriminator's outputs on them ``a_real``, ``a_fake`` [R, n].

        The samples are taken in chunks whose size is set by the generator's size
        (:data:`VARIANCE_CHUNK`), never by the batch. Deviations are summed from c, the n-sample
        loss's gradient computed in one backward: tr Ĉov = (Σ‖g_i − c‖² − n‖ḡ − c‖²)/(n − 1),
        with ḡ − c = Σ(g_i − c)/n a rounding error, so that no large sums cancel."""
        R, n = z.shape[:2]
        chunk = max(1, min(n, VARIANCE_CHUNK // self.gen_net.n_params()))
        c = self._mean_gradient(params, z, x_real)
        zeros = torch.zeros(R, n, dtype=z.dtype, device=z.device)
        dev2, sq = zeros.clone(), zeros.clone()        # ‖g_i − c‖², ‖g_i‖² [R, n]
        shift = {k: torch.zeros_like(v) for k, v in c.items()}   # Σ_i (g_i − c)
        for s in range(0, n, chunk):
            g = self.per_sample_gradients(params, z[:, s:s + chunk], x_real[:, s:s + chunk])
            for k, v in g.items():
                d = v - c[k][:, None]
                dev2[:, s:s + chunk] += (d * d).reshape(R, v.shape[1], -1).sum(2)
                sq[:, s:s + chunk] += (v * v).reshape(R, v.shape[1], -1).sum(2)
                shift[k] += d.sum(1)
        off = sum(((v / n) ** 2).reshape(R, -1).sum(1) for v in shift.values())     # ‖ḡ − c‖²
        spread = (dev2.sum(1) - n * off) / (n - 1)                                   # tr Ĉov[g_i]
        mean2 = sum(((c[k] + v / n) ** 2).reshape(R, -1).sum(1) for k, v in shift.items())  # ‖ḡ‖²
        norms = torch.sqrt(sq)
        top = norms.topk(math.ceil(n / 100), dim=1).values.sum(1) / norms.sum(1)
        with torch.enable_grad():   # the samples' weights |∂ℓ_i/∂a_i|, each sample alone
            a = a_fake.detach().requires_grad_()
            one = torch.ones_like(a)[..., None]
            loss = costs.gan_losses(self.objective_name, a_real.detach()[..., None], one, a[..., None],
                                    one, self.gen_cost)["gen"]
            (slope,) = torch.autograd.grad(loss.sum(), a)
        w = slope.abs()
        return {"var.rel": spread / mean2, "var.ess": w.sum(1) ** 2 / (n * (w * w).sum(1)),
                "var.top1": top, "var.mean_norm": torch.sqrt(mean2)}

    def diagnose_fit(self, steps: np.ndarray, series: dict[str, np.ndarray], n_valid: np.ndarray
                     ) -> dict[str, np.ndarray]:
        """Evidence: the last record's ``energy`` (data-space energy distance), ``frechet_pixels``
        and the discriminator's mean outputs ``disc_real`` / ``disc_fake``. With labelled data also
        the last record's ``frechet`` (on the feature network's features), ``classes_covered``,
        ``class_kl``, ``confident``, and the evaluators' held-out accuracies, the same in every run
        of the data: ``classifier_accuracy`` (the class metrics' logistic regression) and
        ``feature_accuracy`` (the feature network's); ``fit`` is
        :func:`gamedyn.fit.fit_labels` with classes as modes (covered classes for captured modes,
        ``confident`` for the high-quality share, ``class_kl`` for the KL; κ = class_kl / log C),
        ``mode_collapse`` (bool) whether it says so, and ``dynamics`` the sample-based label of
        :func:`gamedyn.fit.sample_dynamics` on the class histograms ``fit.mass[k]`` (mode hopping
        = class hopping). Without labels ``fit`` is n/a and the dynamics label the generic one."""
        out = {"energy": fit.last_valid(series["fit.energy"], n_valid),
               "disc_real": fit.last_valid(series["D.real"], n_valid),
               "disc_fake": fit.last_valid(series["D.fake"], n_valid)}
        out.update({k: fit.last_valid(series[f"fit.{k}"], n_valid) for k in ("frechet_pixels", "frechet")
                    if f"fit.{k}" in series})
        if self.classifier is not None:
            out.update(classifier_accuracy=np.full(len(n_valid), self.classifier_accuracy),
                       feature_accuracy=np.full(len(n_valid), self.feature_accuracy))
        if "fit.class_kl" not in series:
            return {"fit": np.full(len(n_valid), "n/a", dtype=object), **out}
        th = {k: getattr(self, k) for k in fit.THRESHOLD_PARAMS}
        last = {k: fit.last_valid(series[f"fit.{k}"], n_valid)
                for k in ("classes_covered", "class_kl", "confident")}
        C = sum(1 for k in series if k.startswith("fit.mass["))
        label = fit.fit_labels(last["classes_covered"], last["confident"], last["class_kl"], C, th)
        mass = np.stack([series[f"fit.mass[{k}]"] for k in range(C)], -1)   # [R, T, C]
        out.update(fit=label, mode_collapse=label == "mode_collapse", **last)
        out.update(fit.sample_dynamics(steps, mass, n_valid, n_valid < len(steps), th, series["fit.energy"]))
        return out

    # --- the players as modules ------------------------------------------------------------

    def final_columns(self, params: Params, n_runs: int) -> dict[str, list]:
        """``players``: each run's final weights (:func:`gamedyn.modules.encode_players`), where
        ``save_players``; ``snapshots``: the images kept at the ``snapshots`` steps and those of
        the final generator (:func:`encode_snapshots`), where asked for."""
        out: dict[str, list] = {}
        if self.save_players:
            config = {"name": self.name, **{k: getattr(self, k) for k in self.params}}
            out["players"] = [modules.encode_players(config, self.dtype, params, r) for r in range(n_runs)]
        if self.snapshots is not None:
            with torch.no_grad(), self.gen_net.evaluating():   # as a record generates them
                final = self._snapshot(self.generate(params, self._evaluation()["z"]))
            steps = sorted(self._snapshots)
            missing = [s for s in self.snapshots["steps"] if s not in self._snapshots]
            images = [self._snapshots[s] for s in steps] + [final]
            out["snapshots"] = [encode_snapshots(steps, [im[r] for im in images], self.dataset.shape,
                                                 missing) for r in range(n_runs)]
        return out

    def players_of_run(self, params: Params, run: int) -> dict[str, torch.nn.Module]:
        """Run ``run``'s generator and discriminator as plain modules of the user's classes."""
        return {"gen": self.gen_net.load_run(params["gen"], run),
                "disc": self.disc_net.load_run(params["disc"], run)}


def _latent(spec: Any, key: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or set(spec) - {"dim", "dist"}:
        raise StudyError(key, f"{spec!r} is not accepted: expected {{dim: an integer >= 1, dist: "
                              f"{' | '.join(LATENT_DISTS)}}}")
    out = {**LATENT_DEFAULT, **spec}
    if isinstance(out["dim"], bool) or not isinstance(out["dim"], int) or out["dim"] < 1:
        raise StudyError(f"{key}.dim", f"{out['dim']!r} is not accepted: expected an integer >= 1")
    if out["dist"] not in LATENT_DISTS:
        raise StudyError(f"{key}.dist", f"{out['dist']!r} is not accepted: expected one of "
                                        f"{', '.join(LATENT_DISTS)}")
    return out


def _snapshots(spec: Any, eval_samples: int, key: str) -> dict[str, Any] | None:
    """The ``snapshots`` key resolved: None, or {steps: sorted distinct integers >= 0, images: n}."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        hint = " (a list directly under game: is a grid axis of the study)" \
            if isinstance(spec, int | str) and not isinstance(spec, bool) else ""
        raise StudyError(key, f"{spec!r} is not accepted: expected {_SNAPSHOTS_ACCEPTED}{hint}")
    for k in spec:
        if k not in SNAPSHOT_KEYS:
            raise unknown(f"{key}.{k}", "key", k, SNAPSHOT_KEYS)
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
        raise StudyError(f"{key}.steps", f"{steps!r} is not accepted: expected a non-empty list of "
                                         f"record steps (integers >= 0)")
    if len(set(steps)) < len(steps):
        twice = sorted({s for s in steps if steps.count(s) > 1})
        raise StudyError(f"{key}.steps", f"{steps!r} is not accepted: step {twice[0]} is given twice")
    images = spec.get("images", SNAPSHOT_IMAGES)
    if isinstance(images, bool) or not isinstance(images, int) or not 1 <= images <= eval_samples:
        raise StudyError(f"{key}.images", f"{images!r} is not accepted: expected an integer from 1 "
                                          f"to eval_samples = {eval_samples}")
    return {"steps": sorted(steps), "images": images}


def encode_snapshots(steps: list[int], images: list[Tensor], shape: tuple[int, ...],
                     missing: list[int] | tuple[int, ...] = ()) -> str:
    """One run's snapshots as JSON text: ``format``, ``steps`` (the record steps kept, in order),
    ``missing`` (steps asked for but never recorded), ``shape`` ([images, *sample shape]) and
    ``images``, the base64 of the float16 values of the images at each step and then of the final
    generator ([len(steps) + 1, images, *sample shape], C order). Deterministic."""
    stacked = torch.stack([im.reshape(-1, *shape) for im in images]).to(torch.float16).numpy()
    return json.dumps({"format": SNAPSHOTS_FORMAT, "steps": list(steps), "missing": list(missing),
                       "shape": list(stacked.shape[1:]),
                       "images": base64.b64encode(stacked.tobytes()).decode("ascii")})


def decode_snapshots(text: str) -> dict[int | str, Any]:
    """The images of :func:`encode_snapshots`: {step: [images, *shape], ..., "final": [images,
    *shape]} (float32 arrays), and under ``"missing"`` the steps asked for but never recorded."""
    meta = json.loads(text)
    if meta.get("format") != SNAPSHOTS_FORMAT:
        raise ValueError("not a gamedyn snapshots text")
    values = np.frombuffer(base64.b64decode(meta["images"]), dtype=np.float16)
    values = values.reshape(len(meta["steps"]) + 1, *meta["shape"]).astype(np.float32)
    out: dict[int | str, Any] = dict(zip(meta["steps"], values[:-1]))
    out["final"] = values[-1]
    out["missing"] = list(meta["missing"])
    return out
