"""Fused stepping: chunks of steps (and the record that ends them) compiled into one kernel.

A batch steps R runs at once, but in eager PyTorch every step of a toy game is a dozen tiny
operations over [R] tensors, each paying the dispatcher's overhead: about 10⁷ run-steps/s at
R = 1,000, whatever the arithmetic. Compiling ``k`` consecutive steps of the rule — the game's field
(``torch.autograd.grad``, traced by Dynamo with ``trace_autograd_ops``), the optimizer and the
record that follows — with ``torch.compile`` (Inductor) fuses them into a few C++ (or Triton) loops
over the run axis, an order of magnitude or more faster. Nothing about the dynamics changes: the
compiled chunk computes the same step functions (results agree with eager stepping to rounding,
``tests/test_fuse.py``).

Modes (``gamedyn run --compile``):

- ``off``: eager stepping;
- ``on``: compile wherever it works;
- ``auto`` (default): compile only where it pays: after the first :data:`PROBE_STEPS` steps
  (stepped eagerly, each timed), when the remaining eager stepping — the median step's time × the
  steps left — would take longer than :data:`AUTO_MIN_SECONDS` (a cold compilation takes several
  seconds), or when this process already compiled the same chunk (a later batch of the same shape
  then reuses it at no cost).

Either way, stepping falls back to eager, saying why in the runs table's ``stepping_note``, where
fusion cannot work: a game that draws random numbers in its losses (the counter-based streams keep
their draw counter in Python), a rule Dynamo cannot trace as one graph (data-dependent loops such as
``best_response`` or ``cgd``'s CG), a chunk that recompiles on every call (Python numbers in a rule's
state), or no C++ compiler. Compilations are cached: in this process by Dynamo (for later batches),
and on disk by Inductor's FX-graph and AOT-autograd caches (for later processes and studies; the
folder is ``TORCHINDUCTOR_CACHE_DIR``, by default ``~/.cache/gamedyn/inductor``).

The chunk length is the record interval when it is at most :data:`MAX_UNROLL` steps (the chunk ends
with the record); a longer interval is stepped in chunks of ``MAX_UNROLL`` (a divisor of it where one
is at least half as long) and a compiled recording chunk, with any remainder stepped eagerly.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .games.base import Params
from .record import Recorder
from .rules.base import Rule, State
from .rules.context import Context

MODES = ("auto", "on", "off")
#: ``auto`` compiles when the remaining eager stepping would take longer than this (seconds).
AUTO_MIN_SECONDS = 10.0
#: Most steps unrolled into one compiled chunk (compile time grows with it).
MAX_UNROLL = 10
#: Steps stepped eagerly and timed one by one before deciding (their median prices a step).
PROBE_STEPS = 20
#: Chunks already compiled in this process (their signatures): ``auto`` reuses them at no cost.
_COMPILED: set[tuple] = set()


def chunk_length(interval: int) -> int:
    """Steps per compiled chunk for a record interval (see the module docstring)."""
    if interval <= MAX_UNROLL:
        return interval
    best = max(d for d in range(1, MAX_UNROLL + 1) if interval % d == 0)
    return best if 2 * best >= MAX_UNROLL else MAX_UNROLL


def _zero_counts() -> dict[str, int]:
    return {"grad_evals": 0, "hvps": 0}


class Stepper:
    """Advances a batch from one record to the next, eagerly or with compiled chunks.

    ``advance(params, state, n)`` takes ``n`` steps and returns the new params, state and the
    record row at the end ([R, V], see :meth:`Recorder.row`). The first :data:`PROBE_STEPS` steps
    of a batch are stepped eagerly and timed; then it decides. ``kind`` says how the batch was
    stepped in the end (``eager`` or ``compiled``), ``note`` why it was not compiled (empty when it
    was, or when ``off`` was asked), ``compile_seconds`` the time spent compiling.
    """

    def __init__(self, rule: Rule, ctx: Context, recorder: Recorder, mode: str, steps: int,
                 interval: int, signature: tuple) -> None:
        if mode not in MODES:
            raise ValueError(f"compile mode {mode!r}: expected one of {', '.join(MODES)}")
        self.rule, self.ctx, self.recorder, self.mode = rule, ctx, recorder, mode
        self.steps, self.interval, self.k = steps, interval, chunk_length(interval)
        self.signature = (*signature, self.k)
        self.kind, self.note, self.compile_seconds = "eager", "", 0.0
        self._decided = mode == "off"
        self._done = 0
        self._fns: dict[str, Callable[..., Any]] = {}
        self._graphs: dict[str, int] = {}
        self._times: list[float] = []
        self._draws = False

    def advance(self, params: Params, state: State, n: int) -> tuple[Params, State, torch.Tensor]:
        if not self._decided:
            m = min(n, PROBE_STEPS - len(self._times))
            params, state = self._probe(params, state, m)
            n -= m
            if self.kind != "compiled" or n == 0:
                params, state = self._eager(params, state, n)
                return params, state, self.recorder.row(params)
        if self.kind == "compiled":
            counts = dict(self.ctx.counts)
            try:
                out = self._compiled(params, state, n)
                _COMPILED.add(self.signature)
                return out
            except Exception as e:  # noqa: BLE001  (any compiler failure: fall back to eager)
                self.ctx.counts = counts  # the interval is redone eagerly from where it began
                self.kind, self.note = "eager", f"compilation failed: {_first_line(e)}"
        params, state = self._eager(params, state, n)
        return params, state, self.recorder.row(params)

    # -- eager -----------------------------------------------------------------------------------
    def _eager(self, params: Params, state: State, n: int) -> tuple[Params, State]:
        for _ in range(n):
            with torch.enable_grad():
                params, state = self.rule.step(self.ctx, params, state)
        self._done += n
        return params, state

    # -- the decision ----------------------------------------------------------------------------
    def _probe(self, params: Params, state: State, m: int) -> tuple[Params, State]:
        """Step ``m`` steps eagerly, each timed, watching the random streams; after
        :data:`PROBE_STEPS` steps (or the last one), decide."""
        rngs = (self.recorder.game.rng, self.recorder.rng)
        counters = [g.counter if g is not None else None for g in rngs]
        for _ in range(m):
            start = time.perf_counter()
            params, state = self._eager(params, state, 1)
            self._times.append(time.perf_counter() - start)
        self._draws |= any(g is not None and g.counter != c for g, c in zip(rngs, counters))
        if len(self._times) < PROBE_STEPS and self._done < self.steps:
            return params, state
        if rngs[1] is not None:  # does recording draw? (a throw-away record, its draws undone)
            before = rngs[1].counter
            self.recorder.row(params)
            self._draws, rngs[1].counter = self._draws or rngs[1].counter != before, before
        self._decided = True
        if self._draws:
            self.note = "the game draws random numbers (not traced)"
            return params, state
        if self._done >= self.steps:
            self.note = "no steps left after the probe"
            return params, state
        remaining = statistics.median(self._times) * (self.steps - self._done)
        if self.mode == "auto" and self.signature not in _COMPILED and remaining < AUTO_MIN_SECONDS:
            self.note = "auto: too short for a compilation to pay"
            return params, state
        self.kind = "compiled"
        _set_up_compiler()
        start, counts = time.perf_counter(), dict(self.ctx.counts)
        try:  # compile now, on a throw-away copy of the point, so that a failure costs nothing
            first = "rec" if self.interval == self.k else "steps"
            self._call(first, _clone(params), _clone(state))
        except Exception as e:  # noqa: BLE001
            self.kind, self.note = "eager", f"compilation failed: {_first_line(e)}"
        self._graphs = dict.fromkeys(self._graphs, 1)
        self.ctx.counts = counts  # the throw-away chunk is not charged to the rule
        self.compile_seconds = time.perf_counter() - start  # reused code: the time of one chunk
        return params, state

    # -- compiled --------------------------------------------------------------------------------
    def _compiled(self, params: Params, state: State, n: int) -> tuple[Params, State, torch.Tensor]:
        """``n`` steps: one chunk ending with the record when the chunk is the record interval,
        else chunks, the remainder eagerly, and the record compiled on its own."""
        if n == self.k == self.interval:
            params, state, row = self._call("rec", params, state)
            self._done += n
            return params, state, row
        q, r = divmod(n, self.k)
        for _ in range(q):
            params, state = self._call("steps", params, state)
            self._done += self.k
        params, state = self._eager(params, state, r)
        return params, state, self._call("row", params, state)

    def _fn(self, what: str) -> Callable[..., Any]:
        """The compiled function ``steps`` (k steps), ``rec`` (k steps and the record) or ``row``."""
        if what not in self._fns:
            rule, ctx, recorder = self.rule, self.ctx, self.recorder
            k = 0 if what == "row" else self.k

            def chunk(params: Params, state: State) -> tuple:
                ctx.counts = _zero_counts()           # assigned before read: no guard on totals
                recorder.ctx.counts = _zero_counts()
                for _ in range(k):
                    params, state = rule.step(ctx, params, state)
                if what == "steps":
                    return params, state
                row = recorder.row(params)
                return row if what == "row" else (params, state, row)

            self._fns[what] = torch.compile(chunk, fullgraph=True, dynamic=False)
            self._graphs[what] = 0
        return self._fns[what]

    def _call(self, what: str, params: Params, state: State) -> Any:
        fn, before, graphs = self._fn(what), dict(self.ctx.counts), _graph_count()
        start = time.perf_counter()
        out = fn(params, state)
        self.ctx.counts = {c: before[c] + self.ctx.counts[c] for c in before}
        if _graph_count() > graphs:  # this call compiled (a first call, or a new batch shape)
            self.compile_seconds += time.perf_counter() - start
            self._graphs[what] += _graph_count() - graphs
        if self._graphs[what] > 1:  # compiled once per batch shape
            raise _Unfusable("the compiled chunk recompiles on every call (Python numbers in the "
                             "rule's or optimizer's state?)")
        return out


class _Unfusable(RuntimeError):
    pass


def _graph_count() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _clone(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree


def _first_line(e: BaseException, width: int = 300) -> str:
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= width else text[: width - 1] + "…"


_READY = False


def _set_up_compiler() -> None:
    """Dynamo traces ``torch.autograd.grad`` (the field) instead of breaking the graph there; the
    on-disk compile cache goes to a stable folder unless the user chose one."""
    global _READY
    if _READY:
        return
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                          str(Path.home() / ".cache" / "gamedyn" / "inductor"))
    import torch._dynamo

    torch._dynamo.config.trace_autograd_ops = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    _READY = True
