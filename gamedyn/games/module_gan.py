"""A GAN whose players are the user's own ``torch.nn.Module`` classes, on real data."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import costs, data, fit, modules
from ..component import Param
from ..errors import StudyError
from ..random import Streams
from .base import GAMES, Params, SampleGame, Tensor

#: Stream id of the fixed evaluation sample (latents, data), apart from training and recording.
EVAL_STREAM = 0x5EED_E7A2
LATENT_DISTS = ("normal", "uniform")
LATENT_DEFAULT = {"dim": 16, "dist": "normal"}
#: Losses whose discriminator output is a logit (D = σ(a)); for the others it is a score.
_LOGIT_LOSSES = ("minimax", "non_saturating", "maximum_likelihood")


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
    run's weights the class's own initialisation under its seed; BatchNorm with running statistics
    and dropout refused with a one-line error). The generator maps latents [n, dim] to samples shaped
    like the data's ([n, *shape], or flattened [n, size]: digits [n, 1, 8, 8] or [n, 64]); the
    discriminator maps such samples to one output a per sample, [n] or [n, 1]. Both are checked once
    when the study is validated, before anything runs.

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
    (:func:`gamedyn.fit.classifier`, fitted once and cached on disk): ``fit.classes_covered``,
    ``fit.class_kl``, ``fit.confident`` and the class histogram ``fit.mass[k]``, from which
    :meth:`diagnose_fit` decides ``fit`` and ``dynamics``; and ``fit.frechet``, the same distance
    on the 64 hidden ReLU features of a one-hidden-layer network trained on the labels
    (:func:`gamedyn.fit.class_features`) — FID's construction (Heusel et al. 2017, arXiv
    1706.08500) on a small feature space of the data's own: not Inception-FID, not comparable to
    published FIDs. The thresholds (:data:`gamedyn.fit.THRESHOLD_PARAMS`, ``class_confidence``) are
    parameters. Without labels ``fit`` is n/a. All are computed for every run at once.

    With ``save_players`` (default), each run's final weights are kept in the runs table (column
    ``players``) and :meth:`gamedyn.results.Results.players` gives them back as modules of the
    user's classes.
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
        **fit.THRESHOLD_PARAMS,   # of the fit and dynamics labels (labelled data; classes as modes)
    }

    @classmethod
    def resolve(cls, given: dict[str, Any], where: str) -> dict[str, Any]:
        out = super().resolve(given, where)
        for player in ("generator", "discriminator"):
            if out[player] is None:
                raise StudyError(f"{where}.{player}", f"missing: expected {modules.ACCEPTED}")
            out[player] = modules.validate_spec(out[player], f"{where}.{player}")
        out["latent"] = _latent(out["latent"], f"{where}.latent")
        out["data"] = data.validate(out["data"], f"{where}.data")
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
        return str(value)

    @classmethod
    def plugin_files(cls, config: dict) -> tuple[str, ...]:
        return tuple(config[p]["module"] for p in ("generator", "discriminator")
                     if config[p]["module"].endswith(".py"))

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.dataset = data.load(self.data)
        self.sampler = data.Sampler(self.dataset, dtype, device)
        self.gen_net = modules.BatchedModule(self.generator, "game.generator", dtype, device)
        self.disc_net = modules.BatchedModule(self.discriminator, "game.discriminator", dtype, device)
        self.objective_name, self.gen_cost = costs.NAMED_LOSSES[self.loss]
        self.sample_shape = self._check_outputs()
        self._eval: dict[Any, dict[str, Tensor]] = {}
        self.classifier = self._classifier()

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

    def _evaluation(self) -> dict[str, Tensor]:
        """The fixed evaluation latents and data of these runs (drawn once, then cached)."""
        keys = self.rng.keys
        cache_key = (tuple(keys.tolist()), str(keys.device))
        if cache_key not in self._eval:
            rng = Streams(keys, EVAL_STREAM, self.device)
            z = self.latents(rng, self.eval_samples)
            x = self.sampler.sample(rng, self.eval_samples)
            ev = {"z": z, "data": x, "data_dd": fit.mean_distance(x, x),
                  "data_pixels": fit.frechet_reference(x)}   # the data's Gaussian, once
            if self.features is not None:
                ev["data_features"] = fit.frechet_reference(fit.class_features(x, **self.features))
            self._eval = {cache_key: ev}
        return self._eval[cache_key]

    def metrics(self, params: Params) -> dict[str, Tensor]:
        ev = self._evaluation()
        with torch.no_grad():
            x = self.generate(params, ev["z"])
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
            return out

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
        ``save_players``."""
        if not self.save_players:
            return {}
        config = {"name": self.name, **{k: getattr(self, k) for k in self.params}}
        return {"players": [modules.encode_players(config, self.dtype, params, r) for r in range(n_runs)]}

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
