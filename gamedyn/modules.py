"""The user's ``torch.nn.Module`` classes as players over the run axis (``torch.func``).

A study names a network as ``{module: …, class: …, kwargs: {…}}``: ``module`` is an importable name
or a ``.py`` file relative to the study file (loaded as ``plugins:`` are, and shipped with them to
every worker: :mod:`gamedyn.plugins`), ``class`` an ``nn.Module`` subclass in it, ``kwargs`` its
constructor's arguments. :class:`BatchedModule` then makes R networks of that class one player:

- **Weights per run.** Run r's network is the class's own initialisation under its seed: the module
  is constructed after ``torch.manual_seed(torch_seed(seed_r, salt))`` (:func:`torch_seed`; salt 1
  for the generator, 2 for the discriminator), in a forked global generator, then cast to the study's
  dtype; its parameters are stacked to ``{name: [R, …]}`` (``named_parameters`` names). So a user
  reproduces run r's initial network with ``torch.manual_seed(torch_seed(seed, salt)); cls(**kwargs)``.
  gamedyn owns these stacked tensors: ``torch.func.stack_module_state`` would return copies anyway
  (pytorch#120581), so no module's ``.parameters()`` are ever stepped.
- **Forward over runs.** ``y[r] = f(θ_r, x[r])`` for all r at once:
  ``torch.func.vmap(functional_call(base, (θ, buffers), x))`` over the run axis of θ and x (the
  "model ensembling" recipe of the torch.func docs), differentiable to any order by ordinary
  autograd, so every rule (Hessian-vector products, unrolling through inner steps) applies. Run r
  reads only row r of every tensor: the gradient of Σ_r loss_r is each run's own gradient.
- **Buffers** (registered constants, e.g. a fixed mask) are shared by every run: those of the module
  built under seed 0 (a run's numbers then never depend on its batch-mates).
- **Dropout from each run's own stream.** An ``nn.Dropout`` layer (p > 0) in training mode does not
  draw from torch's global generator, which every run would share, so that a run's masks would
  depend on its batch-mates (under ``vmap``, ``randomness="different"`` still draws from that one
  generator: torch.func's docs, "Randomness"; ``"error"``, used here, refuses it). gamedyn replaces
  the layer's forward in its own copy of the module (the user's class is untouched) by
  ``x · m / (1 − p)``, with run r's mask m_r = [u_r ≥ p] and u = ``streams().fast_uniform(*x.shape)``
  (:meth:`gamedyn.random.Streams.fast_uniform`: one draw of the game's current stream, the training
  stream or the recorder's, for all R runs at once, outside the per-run computation, then row r
  picked inside ``vmap`` by the run's index). So a run's masks are the numbers its own seed gives,
  P(keep) = 1 − p up to 2⁻³², and a run alone equals the run in a batch bit for bit.
  ``torch.nn.functional.dropout`` called inside ``forward`` cannot be replaced: under
  ``vmap(randomness="error")`` it raises when the batch steps. :meth:`BatchedModule.evaluating`
  puts the networks in eval mode (``module.eval()``: no dropout, no draws), as the games' metrics
  are computed.
- **Refused, with a one-line error naming the class and the layer**: normalisation layers that keep
  running statistics (BatchNorm's ``track_running_stats=True``: a buffer written in place in the
  forward pass, which cannot be stepped per run under vmap; functorch#273, #867) — use
  ``track_running_stats=False`` (batch statistics), ``nn.GroupNorm`` or ``nn.LayerNorm``; the other
  dropout layers with p > 0 (``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``, or an
  ``nn.Dropout`` subclass with its own ``forward``: they would draw from torch's global generator,
  not the run's stream) — use ``nn.Dropout`` or p = 0.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from . import plugins, replay, torch_private
from .errors import StudyError, unknown
from .random import Streams

Tensor = torch.Tensor
SPEC_KEYS = ("module", "class", "kwargs")
ACCEPTED = "{module: a module name or a .py file, class: an nn.Module subclass, kwargs: {...}}"


def validate_spec(spec: Any, key: str) -> dict[str, Any]:
    """A network spec checked and resolved: a ``.py`` module made an absolute path (relative to the
    study file, :func:`gamedyn.plugins.file_path`), ``kwargs`` defaulting to {}."""
    if not isinstance(spec, dict):
        raise StudyError(key, f"{spec!r} is not accepted: expected {ACCEPTED}")
    for k in spec:
        if k not in SPEC_KEYS:
            raise unknown(f"{key}.{k}", "key", k, SPEC_KEYS)
    for k in ("module", "class"):
        if not isinstance(spec.get(k), str) or not spec[k]:
            raise StudyError(f"{key}.{k}", f"{spec.get(k)!r} is not accepted: expected {ACCEPTED}")
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise StudyError(f"{key}.kwargs", f"{kwargs!r} is not accepted: expected a mapping of the "
                                          f"constructor's keyword arguments")
    module = spec["module"]
    if plugins.is_file(module):
        module = plugins.file_path(module, f"{key}.module")
    return {"module": module, "class": spec["class"], "kwargs": kwargs}


def torch_seed(seed: int, salt: int) -> int:
    """The global torch seed under which run ``seed``'s network ``salt`` is constructed: 63 bits of
    ``numpy.random.SeedSequence([seed, salt])``."""
    return int(np.random.SeedSequence([int(seed), int(salt)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_class(spec: dict[str, Any], key: str) -> type[nn.Module]:
    """The class a resolved spec names, or a one-line StudyError: a module that does not import (with
    its error's first line and where it was raised), a missing class, a class that is no nn.Module."""
    try:
        mod = plugins.module(spec["module"])
    except Exception as e:  # the user's module failed: say where, in one line
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise StudyError(f"{key}.module", f"{spec['module']!r} does not import: {_first_line(e)} "
                                          f"({frame.filename.rsplit('/', 1)[-1]}, line {frame.lineno})"
                         ) from None
    cls = getattr(mod, spec["class"], None)
    if cls is None:
        found = sorted(n for n, v in vars(mod).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == mod.__name__)
        raise StudyError(f"{key}.class", f"{spec['class']!r}: no such class in {spec['module']!r}; "
                                         f"its nn.Module classes: {', '.join(found) or 'none'}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise StudyError(f"{key}.class", f"{spec['class']!r} in {spec['module']!r} is "
                                         f"{type(cls).__name__} {cls!r}, not an nn.Module subclass")
    return cls


def streamed_dropout(m: nn.Module) -> bool:
    """Whether ``m`` is a dropout layer whose masks :class:`BatchedModule` draws from each run's
    stream: an ``nn.Dropout`` (or a subclass keeping its ``forward``). Channel dropout
    (``Dropout1d/2d/3d``) and alpha dropout are not (they keep their own mask shapes and values)."""
    return isinstance(m, nn.Dropout) and type(m).forward is nn.Dropout.forward


def check_supported(module: nn.Module, name: str, key: str) -> None:
    """Refuse layers that cannot be stepped per run (see the module docstring), naming the layer."""
    for layer, m in module.named_modules():
        where = f"{name} layer {layer!r} ({type(m).__name__})"
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            raise StudyError(key, f"{where} keeps running statistics, which cannot be stepped per run "
                                  f"(functorch#273): use track_running_stats=False (batch statistics), "
                                  f"nn.GroupNorm or nn.LayerNorm")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and not streamed_dropout(m):
            raise StudyError(key, f"{where} has p = {m.p:g}: it would draw from torch's global "
                                  f"generator, not the run's own stream; only nn.Dropout draws per "
                                  f"run: use nn.Dropout or p=0")


class BatchedModule:
    """R networks of one ``nn.Module`` class as one player (see the module docstring).

    ``shapes()`` gives the per-run parameter shapes, ``init_params(seeds, salt)`` the stacked initial
    parameters, ``net(params, x)`` the forward pass of run r's network on ``x[r]`` for every r
    (``x`` [R, n, …] → [R, n, …]), ``load_run(params, r)`` a plain module holding run r's weights.
    ``streams`` gives the game's current per-run streams (``lambda: game.rng``), from which the
    ``nn.Dropout`` layers draw their masks in training mode; ``evaluating()`` is eval mode.
    """

    def __init__(self, spec: dict[str, Any], key: str, dtype: torch.dtype, device: str,
                 streams: Callable[[], Streams | None] | None = None) -> None:
        self.spec, self.key, self.dtype, self.device = spec, key, dtype, device
        self.streams = streams
        self.cls = load_class(spec, key)
        self.name = f"{self.cls.__name__} ({spec['module']})"
        self.base = self.build(0)
        check_supported(self.base, self.cls.__name__, key)
        self.base.requires_grad_(False)
        self._shapes = {n: tuple(p.shape) for n, p in self.base.named_parameters()}
        if not self._shapes:
            raise StudyError(key, f"{self.cls.__name__} has no parameters: a player needs some")
        self._buffers = dict(self.base.named_buffers())
        #: the dropout layers whose masks come from the runs' streams (their forward replaced in
        #: gamedyn's own base module only: load_run's modules are the user's class as written)
        self.dropout = [n for n, m in self.base.named_modules() if streamed_dropout(m) and m.p > 0]
        for n in self.dropout:
            layer = self.base.get_submodule(n)
            layer.forward = functools.partial(self._dropout, n, layer)
        self._run: Tensor | None = None   # inside the vmapped call: this run's index (batched)
        self._runs = 0                    # and the number of runs R of that call

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], run: Tensor, x: Tensor) -> Tensor:
            self._run = run
            try:
                return functional_call(self.base, (params, buffers), (x,))
            finally:
                self._run = None

        self._call = vmap(one, in_dims=(0, None, 0, 0), randomness="error")
        self._replays: dict[tuple, replay.Recording | None] = {}

    def _dropout(self, name: str, layer: nn.Dropout, x: Tensor) -> Tensor:
        """``layer``'s forward inside the vmapped call: ``x · m_r / (1 − p)`` with run r's mask
        m_r = [u_r ≥ p] from one ``fast_uniform`` draw of the current streams for all runs (see the
        module docstring); the identity in eval mode and in plain calls of the base module (the
        output-shape checks, which draw nothing)."""
        if not layer.training or self._run is None:
            return x
        rng = self.streams() if self.streams is not None else None
        where = f"{self.cls.__name__} layer {name!r} (Dropout)"
        if rng is None:
            raise RuntimeError(f"{where}: dropout in training mode needs the runs' streams "
                               f"(the game's rng is not set)")
        if len(rng.keys) != self._runs:
            raise RuntimeError(f"{where}: {len(rng.keys)} streams for {self._runs} runs")
        u = rng.fast_uniform(*x.shape, dtype=torch.float64)        # [R, *x.shape]: every run's draw
        keep = (u >= layer.p).to(x.dtype)
        # torch's own scaling (ATen's _dropout_impl: the mask divided by 1 − p; p = 1: zeros)
        noise = keep.div_(1.0 - layer.p) if layer.p < 1.0 else torch.zeros_like(keep)
        return x * noise[self._run]

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The networks in eval mode (``module.eval()``: dropout is the identity and draws nothing;
        BatchNorm without running statistics normalises by the batch either way) inside the block,
        as the games' metrics are computed; every submodule's previous mode restored after it."""
        was = [(m, m.training) for m in self.base.modules()]
        self.base.train(False)
        try:
            yield
        finally:
            for m, mode in was:
                m.training = mode

    def build(self, seed: int, salt: int = 0) -> nn.Module:
        """A new module of the class, constructed under ``torch_seed(seed, salt)`` (salt 0: the
        base module, seed 0) in a forked global generator, in the study's dtype and on its device.
        One thread at a time: the global generator is the process's, and two batches stepped in two
        threads of one process (a Dask worker's) would otherwise draw each other's weights."""
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed(seed, salt))
            try:
                module = self.cls(**self.spec["kwargs"])
            except Exception as e:  # the constructor rejected the kwargs (or failed otherwise)
                raise StudyError(f"{self.key}.kwargs", f"{self.cls.__name__}(**{self.spec['kwargs']!r}) "
                                                       f"failed: {_first_line(e)}") from None
        return module.to(dtype=self.dtype, device=self.device)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-run parameter shapes, by ``named_parameters`` name."""
        return dict(self._shapes)

    def n_params(self) -> int:
        return sum(math.prod(s) for s in self._shapes.values())

    def init_params(self, seeds: Sequence[int], salt: int) -> dict[str, Tensor]:
        """Each run's initial parameters [R, …]: run r's from its seed only (runs sharing a seed share
        a network)."""
        unique, index = np.unique(np.asarray(seeds, dtype=np.int64), return_inverse=True)
        nets = [dict(self.build(int(s), salt).named_parameters()) for s in unique]
        idx = torch.as_tensor(index, device=self.device)
        return {n: torch.stack([net[n].detach() for net in nets])[idx].clone() for n in self._shapes}

    def __call__(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Run r's network on ``x[r]`` for every run: [R, n, …] → [R, n, …]: the vmapped call, or,
        for a network without dropout, its operations replayed (:mod:`gamedyn.replay`: the same
        operations on the same values, without ``vmap``'s and ``functional_call``'s Python work on
        every call; recorded once per mode, layout and gradient setting, and neither inside another
        dispatch mode, which must see the call itself, nor inside a ``torch.func`` transform,
        whose wrapped tensors the recorded operations do not describe)."""
        self._runs = x.shape[0]
        if self.dropout or torch_private.in_dispatch_mode():   # (or a torch.func transform)
            return self._vmapped(params, x)
        key = (self.base.training, torch.is_grad_enabled(), x.shape, x.stride(), x.dtype,
               x.requires_grad, tuple((k, v.shape, v.stride(), v.dtype, v.requires_grad)
                                      for k, v in params.items()))
        if key not in self._replays:
            rec = self._replays[key] = replay.record(self._vmapped, [params, x])
            if rec is not None:
                out, rec.result = rec.result, None   # (not kept: it holds its autograd graph)
                return out
        rec = self._replays[key]
        return self._vmapped(params, x) if rec is None else rec.run(params, x)

    def _vmapped(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return self._call(params, self._buffers, torch.arange(x.shape[0], device=x.device), x)

    def load_run(self, params: dict[str, Tensor], run: int) -> nn.Module:
        """A new module of the class holding run ``run``'s parameters (and the shared buffers)."""
        module = self.build(0)
        with torch.no_grad():
            for n, p in module.named_parameters():
                p.copy_(params[n][run])
        return module


# --- final weights, saved in the runs table ------------------------------------------------------

_MAGIC = b"gamedyn-players 1\n"
#: Held while a network is built under torch's (process-wide) global generator.
_GLOBAL_RNG = threading.Lock()


def encode_players(game: dict[str, Any], dtype: torch.dtype, params: dict[str, dict[str, Tensor]],
                   run: int) -> str:
    """Run ``run``'s parameters as text (base64, so that a runs table stores it as a string): a JSON
    header line (the game's resolved config, the dtype, each parameter's player, name and shape) and
    the values, raw, in that order. Deterministic (the same run gives the same text), and
    self-contained: :func:`decode_players` needs nothing else."""
    names = [(p, n, list(t.shape[1:])) for p, named in params.items() for n, t in named.items()]
    header = json.dumps({"game": game, "dtype": str(dtype).removeprefix("torch."), "params": names},
                        sort_keys=True)
    values = [params[p][n][run].detach().cpu().contiguous().numpy().tobytes() for p, n, _ in names]
    return base64.b64encode(_MAGIC + header.encode() + b"\n" + b"".join(values)).decode("ascii")


def decode_players(text: str) -> dict[str, nn.Module]:
    """The players saved by :func:`encode_players`, as modules of the user's classes holding that
    run's weights: ``{"gen": generator, "disc": discriminator}``."""
    from .games import GAMES

    blob = base64.b64decode(text)
    if not blob.startswith(_MAGIC):
        raise ValueError("not a gamedyn players blob")
    header, _, values = blob[len(_MAGIC):].partition(b"\n")
    meta = json.loads(header)
    dtype = getattr(torch, meta["dtype"])
    config = meta["game"]
    cls = GAMES.get(config["name"])
    game = cls.build([{k: v for k, v in config.items() if k != "name"}], dtype)
    flat = np.frombuffer(values, dtype=torch.empty((), dtype=dtype).numpy().dtype)
    params: dict[str, dict[str, Tensor]] = {}
    at = 0
    for player, name, shape in meta["params"]:
        size = math.prod(shape)
        params.setdefault(player, {})[name] = torch.from_numpy(flat[at:at + size].copy()).reshape(1, *shape)
        at += size
    return game.players_of_run(params, 0)
