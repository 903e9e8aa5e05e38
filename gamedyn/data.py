"""Data for neural games: scikit-learn's handwritten digits, the user's own arrays, the 2-D mixtures.

A game's ``data:`` key takes one of

- ``digits``: the 1,797 real 8 × 8 handwritten digits that scikit-learn ships
  (``sklearn.datasets.load_digits``, the UCI "Optical Recognition of Handwritten Digits" test set;
  no download), 16 grey levels v ∈ {0, …, 16} scaled to x = v/8 − 1 ∈ [−1, 1], shape [1797, 1, 8, 8],
  with their labels 0…9;
- ``{file: path.npz}``: the user's arrays (``numpy.savez``): ``x`` [N, …] of real numbers (any float
  or integer dtype, finite; N ≥ 2), optional labels ``y`` [N] of integers. The path is relative to
  the study file;
- ``{mixture: ring | grid, …}``: the mixtures of Gaussians of ``mog_ring`` / ``mog_grid``
  (:mod:`gamedyn.games.mixture`), ``modes``, ``radius``, ``sigma`` (ring; defaults 8, 2, 0.02) or
  ``size``, ``spacing``, ``sigma`` (grid; defaults 5, 2, 0.05): samples [2].

A Dask worker may not see the study's files: the process that runs the study sends the bytes of a
batch's data files with its task (:func:`files`, :func:`provide`), and :func:`from_file` reads those
bytes, under the path the configuration names, before the filesystem.

Minibatches are drawn per run from the run's own stream (:mod:`gamedyn.random`): n indices
i ~ U{0, …, N − 1} with replacement for arrays, a mode k ~ U{0, …, K − 1} plus σε, ε ~ N(0, I₂),
for mixtures; so a run's data depend on its seed only (the run-axis invariant).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import plugins
from .errors import StudyError, unknown
from .random import Streams

Tensor = torch.Tensor
ACCEPTED = "digits, {file: path.npz} or {mixture: ring | grid, ...}"
_MIXTURES = {"ring": {"modes": 8, "radius": 2.0, "sigma": 0.02},
             "grid": {"size": 5, "spacing": 2.0, "sigma": 0.05}}
#: Data files' contents given to this process (:func:`provide`): path as a configuration names it →
#: bytes, read by :func:`from_file` instead of the file.
_PROVIDED: dict[str, bytes] = {}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Samples to draw minibatches from: a finite array ``x`` [N, *shape] (labels ``y`` [N] or None),
    or a mixture of Gaussians (``means`` [K, d], ``sigma``; ``x`` None)."""

    name: str
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    means: np.ndarray | None = None
    sigma: float = 0.0

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape."""
        return tuple(self.x.shape[1:]) if self.x is not None else (self.means.shape[1],)

    @property
    def size(self) -> int:
        """Numbers per sample (the flattened shape)."""
        return math.prod(self.shape)


class Sampler:
    """Draws flat minibatches [R, n, size] of a :class:`Dataset` from the runs' streams."""

    def __init__(self, data: Dataset, dtype: torch.dtype, device: str) -> None:
        self.data = data
        if data.x is not None:
            self._x = torch.as_tensor(data.x.reshape(len(data.x), -1), dtype=dtype, device=device)
        else:
            self._means = torch.as_tensor(data.means, dtype=dtype, device=device)
        self.dtype = dtype

    def sample(self, rng: Streams, n: int) -> Tensor:
        """n samples per run [R, n, size], from ``rng`` (one or two draws of its counter)."""
        if self.data.x is not None:
            N = self._x.shape[0]
            i = (rng.fast_uniform(n, dtype=torch.float64) * N).long().clamp_(max=N - 1)
            return self._x[i]
        K, d = self._means.shape
        k = (rng.fast_uniform(n, dtype=torch.float64) * K).long().clamp_(max=K - 1)
        return self._means[k] + self.data.sigma * rng.fast_normal(n, d, dtype=self.dtype)


def validate(spec: Any, key: str) -> str | dict[str, Any]:
    """A ``data:`` value checked and resolved (a file's path made absolute, relative to the study
    file: :func:`gamedyn.plugins.file_path`; a mixture's defaults filled in), or a StudyError."""
    if spec == "digits":
        return spec
    if isinstance(spec, dict) and set(spec) == {"file"} and isinstance(spec["file"], str):
        return {"file": plugins.file_path(spec["file"], f"{key}.file")}
    if isinstance(spec, dict) and spec.get("mixture") in _MIXTURES:
        defaults = _MIXTURES[spec["mixture"]]
        for k, v in spec.items():
            if k == "mixture":
                continue
            if k not in defaults:
                raise unknown(f"{key}.{k}", f"key of a {spec['mixture']} mixture", k, defaults)
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 or \
                    (isinstance(defaults[k], int) and not isinstance(v, int)):
                kind = "an integer" if isinstance(defaults[k], int) else "a number"
                raise StudyError(f"{key}.{k}", f"{v!r} is not accepted: expected {kind} > 0")
        return {"mixture": spec["mixture"], **defaults, **{k: v for k, v in spec.items() if k != "mixture"}}
    raise StudyError(key, f"{spec!r} is not accepted: expected {ACCEPTED}")


def load(spec: str | dict[str, Any], key: str = "game.data") -> Dataset:
    """The dataset a validated ``data:`` value names (arrays cached per process)."""
    if spec == "digits":
        return digits()
    if "file" in spec:
        return from_file(spec["file"], f"{key}.file")
    if spec["mixture"] == "ring":
        from .games.mixture import ring_means

        return Dataset("ring", means=ring_means(spec["modes"], spec["radius"]), sigma=spec["sigma"])
    axis = (np.arange(spec["size"]) - (spec["size"] - 1) / 2.0) * spec["spacing"]
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    return Dataset("grid", means=np.stack([gx.ravel(), gy.ravel()], 1), sigma=spec["sigma"])


@functools.cache
def digits() -> Dataset:
    """scikit-learn's 1,797 8 × 8 digits, x = v/8 − 1 ∈ [−1, 1] of shape [1797, 1, 8, 8], labels y."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise StudyError("game.data", "'digits' needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = (d.images.astype(np.float64) / 8.0 - 1.0)[:, None]
    return Dataset("digits", x=x, y=d.target.astype(np.int64))


def files(config: Any) -> list[str]:
    """The data files a resolved configuration names anywhere (the paths of its ``{file: path}``
    values, as :func:`validate` resolves them), in order of appearance, each once."""
    if isinstance(config, dict):
        if set(config) == {"file"} and isinstance(config["file"], str):
            return [config["file"]]
        config = list(config.values())
    if isinstance(config, list | tuple):
        return list(dict.fromkeys(f for v in config for f in files(v)))
    return []


def provide(contents: dict[str, bytes]) -> None:
    """Make :func:`from_file` read these bytes for these paths (as the configurations name them)
    instead of the files: what a Dask worker without the study's filesystem is sent with a task."""
    _PROVIDED.update(contents)


def from_file(path: str, key: str = "game.data.file") -> Dataset:
    """The arrays of an ``.npz`` file: ``x`` [N, …] (N ≥ 2, real, finite) and optional ``y`` [N]
    (integers); every problem is one line naming the key, the file, what was found and expected.
    Read from the bytes given for ``path`` by :func:`provide`, if any, else from the file; cached
    per process by path and given bytes."""
    return _from_file(path, key, _PROVIDED.get(path))


@functools.cache
def _from_file(path: str, key: str, contents: bytes | None) -> Dataset:
    try:
        with np.load(path if contents is None else io.BytesIO(contents), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise StudyError(key, f"{path!r} is not a readable .npz file: {e}") from None
    if "x" not in arrays:
        raise StudyError(key, f"{path!r} has no array 'x' (found: {', '.join(arrays) or 'none'}); "
                              f"expected x [N, ...] and optionally y [N]")
    x = arrays["x"]
    if x.dtype.kind not in "fiu" or x.ndim < 2 or len(x) < 2:
        raise StudyError(key, f"{path!r}: x has shape {list(x.shape)} and dtype {x.dtype}; expected a "
                              f"float or integer array [N, ...] with N >= 2 samples")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise StudyError(key, f"{path!r}: x holds non-finite values; expected finite numbers")
    y = arrays.get("y")
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (len(x),)):
        raise StudyError(key, f"{path!r}: y has shape {list(y.shape)} and dtype {y.dtype}; expected "
                              f"integer labels of shape [{len(x)}]")
    return Dataset(Path(path).stem, x=x, y=None if y is None else y.astype(np.int64))
