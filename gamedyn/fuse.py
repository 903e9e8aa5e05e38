"""Fused stepping: chunks of steps (and the record that ends them) compiled into one kernel.

A batch steps R runs at once, but in eager PyTorch every step of a toy game is a dozen tiny
operations over [R] tensors, each paying the dispatcher's overhead: about 2·10⁶ run-steps/s at R =
1,000 on 2 cores, whatever the arithmetic. A chunk of ``k`` consecutive steps of the rule — the
game's field (``torch.autograd.grad``), the optimizer, and the record that follows — becomes one
graph of ATen operations (one step and one record traced with ``make_fx`` on fake tensors,
autograd's backward included, and copied as often as the chunk holds them) compiled by Inductor,
which fuses it into a single C++ (or Triton) loop over the run axis. The compiled chunk is then
called directly with the flat list of the params' and state's tensors: no Dynamo frame evaluation or
guards, whose cost at R = 1,000 is several times that of the kernel (measured: ~25 µs per 10-step
chunk and record against ~150 µs through ``torch.compile``). Nothing about the dynamics changes: the
graph computes the same step functions, and compiled and eager stepping agree to rounding
(``tests/test_fuse.py``).

Modes (``gamedyn run --compile``):

- ``off``: eager stepping;
- ``on``: compile wherever it works;
- ``auto`` (default): compile only where it pays, decided from the batch's structure alone, never
  from timings or the state of a cache, so that a study's numbers are the same on every rerun (fused
  and eager stepping agree to rounding, not bit for bit). The first :data:`PROBE_STEPS` steps are
  stepped eagerly, the first of them with its ATen operations counted; the remaining eager stepping
  is priced at :func:`eager_seconds` (operations × steps left, each operation at a dispatch cost
  plus a cost per run). Under :data:`AUTO_MIN_SECONDS` it stays eager; otherwise the chunk is
  traced, and compiled when a cold compilation, :data:`SECONDS_PER_NODE` × its graph's operations
  (conservative: measured cold, 2.8 s for a 20-step bilinear chunk of 1,000 runs, 11 s for SGA with
  Adam in 5-step chunks, since :func:`gamedyn.torch_private.compile_graph` skips Inductor's ISA
  probes and large steps unroll fewer, :func:`unroll_for`), would take less.
  A chunk found in Inductor's cache loads in about a second instead, but counting on it would make
  the choice, and so the numbers, depend on what ran before.

Either way, stepping falls back to eager, saying why in the runs table's ``stepping_note``, where
fusion cannot work: a game that draws random numbers (the counter-based streams keep their draw
counter in Python), a rule whose Python control flow depends on tensor values (``best_response``'s
and ``cgd``'s inner loops: fake tensors have no values, so tracing them raises rather than baking in
one path), state held in Python numbers, in-place updates, or no C++ compiler. Inductor caches its
compilations on disk (``TORCHINDUCTOR_CACHE_DIR``, by default ``~/.cache/gamedyn/inductor``), so
later batches, processes and studies of the same structure skip the C++ compilation. The private
torch API this needs lives in :mod:`gamedyn.torch_private`, with the torch versions it is tested on.

A chunk unrolls at most :data:`MAX_UNROLL` steps, fewer for a rule whose step is a large graph
(:func:`unroll_for`: at most :data:`CHUNK_OPERATIONS` operations of steps, since a cold
compilation's time grows with them). When the record interval fits, a chunk holds as
many whole intervals as fit (:func:`records_per_chunk`), each ending with its record, and writes
those records in place into the recorder's stage (:meth:`Recorder.slots`: views made once, copied
into its values at each check), adding their :meth:`Recorder.judge` to each run's flags: one call
per chunk, no outputs, and the chunks between two of the recorder's checks (:meth:`Recorder.alive`)
called in one loop, the params and state flattened once. A longer interval is stepped in chunks of
as many steps as a chunk may unroll (a divisor of it where one is at least half as long) and a
compiled record, with any remainder stepped eagerly; so are the few intervals left at the end of a
budget that do not fill a chunk.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import torch_private, tree
from .games.base import Params
from .record import Recorder
from .rules.base import Rule, State
from .rules.context import Context

MODES = ("auto", "on", "off")
#: ``auto`` compiles when the remaining eager stepping would take longer than this (seconds).
AUTO_MIN_SECONDS = 3.0
#: Seconds of a cold compilation per operation of the traced chunk (measured on 2 cores: 7-11 ms for
#: chunks of 500 to 6,000 operations, with Inductor's ISA probes, which are now skipped: less, see
#: README "Cold compilation"; kept, so that ``auto`` steps shipped studies as before); weighed against
#: the remaining eager stepping.
SECONDS_PER_NODE = 0.01
#: Seconds of an eager ATen operation: its dispatch (autograd included), and its work per run
#: (measured on 2 cores: Dirac-GAN and x·y steps cost 2-5 µs an operation at R = 16 to 1,000).
SECONDS_PER_OP = 3e-6
SECONDS_PER_OP_RUN = 1e-9
#: Most steps unrolled into one compiled chunk (compile time grows with it).
MAX_UNROLL = 20
#: Most ATen operations of steps (as counted in the batch's first eager step) a compiled chunk
#: unrolls: a rule whose step is a large graph unrolls fewer steps, down to one. A cold compilation
#: costs ~2 s plus ~4 ms an operation, a call ~10 µs: 20 steps of ``unrolled`` (k = 5) with Adam are
#: 16,000 operations and took 74 s to compile, against ~0.1 ms a step to run at R = 1,000.
CHUNK_OPERATIONS = 1500
#: Steps stepped eagerly before deciding (the first counted; all watched for random draws).
PROBE_STEPS = 10


def eager_seconds(ops: int, runs: int, steps: int) -> float:
    """``auto``'s price of ``steps`` eager steps of ``ops`` ATen operations each over ``runs`` runs:
    ``steps · ops · (SECONDS_PER_OP + runs · SECONDS_PER_OP_RUN)``. A model, not a measurement, so
    that the choice is the same on every rerun."""
    return steps * ops * (SECONDS_PER_OP + runs * SECONDS_PER_OP_RUN)


def unroll_for(ops: int) -> int:
    """Steps a compiled chunk may unroll when a step is ``ops`` ATen operations: as many as
    :data:`CHUNK_OPERATIONS` hold, from 1 to :data:`MAX_UNROLL` (that when not counted: 0)."""
    return max(1, min(MAX_UNROLL, CHUNK_OPERATIONS // ops)) if ops else MAX_UNROLL


def chunk_length(interval: int, unroll: int | None = None) -> int:
    """Steps per compiled chunk for a record interval, at most ``unroll`` (default
    :data:`MAX_UNROLL`; see the module docstring)."""
    unroll = MAX_UNROLL if unroll is None else unroll
    if interval <= unroll:
        return interval
    best = max(d for d in range(1, unroll + 1) if interval % d == 0)
    return best if 2 * best >= unroll else unroll


def records_per_chunk(interval: int, unroll: int | None = None) -> int:
    """Record intervals per compiled chunk: as many as fit in ``unroll`` steps (default
    :data:`MAX_UNROLL`)."""
    return max(1, (MAX_UNROLL if unroll is None else unroll) // interval)


class Stepper:
    """Advances a batch from one record to a later one, eagerly or with compiled chunks, and has
    the records stored by the recorder (compiled chunks write them into its slots).

    ``advance(params, state, i, until)`` steps from record ``i`` (the recorder's ``steps[i]``) to a
    later record ``j``, stores records ``i+1 … j`` and returns the new params, state and ``j``: one
    record eagerly, whole compiled chunks of :func:`records_per_chunk` records up to ``until`` (at
    least one). The first :data:`PROBE_STEPS`
    steps of a batch are stepped eagerly (the first with its operations counted); then it decides.
    ``kind`` says how the batch was stepped in the end (``eager`` or ``compiled``), ``note`` why it
    was not compiled (empty when it was, or when ``off`` was asked), ``compile_seconds`` the time
    spent compiling. ``fusable`` False (a run axis padded for the eager kernels' needs only,
    :func:`gamedyn.batch.alignment`) keeps ``auto`` eager.
    """

    def __init__(self, rule: Rule, ctx: Context, recorder: Recorder, mode: str, steps: int,
                 interval: int, fusable: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"compile mode {mode!r}: expected one of {', '.join(MODES)}")
        self.rule, self.ctx, self.recorder, self.mode = rule, ctx, recorder, mode
        self.fusable = fusable
        self.steps, self.interval = steps, interval
        self.k, self.m = 0, 1  # a chunk's steps and records, chosen when deciding (_probe)
        self.kind, self.note, self.compile_seconds = "eager", "", 0.0
        self._decided = False
        self._done = 0
        self._fns: dict[str, Callable[..., Any]] = {}
        self._probed, self._ops = 0, 0
        self._draws = False

    def advance(self, params: Params, state: State, i: int, until: int | None = None
                ) -> tuple[Params, State, int]:
        at = self.recorder.steps
        n = at[i + 1] - at[i]
        if not self._decided:
            m = min(n, PROBE_STEPS - self._probed)
            params, state = self._probe(params, state, m)
            n -= m
        if self.kind == "compiled":
            done = self._done
            try:
                out = self._compiled(params, state, i, n, i + 1 if until is None else until)
                if out is not None:
                    return out
            except Exception as e:  # noqa: BLE001  (any compiler failure: fall back to eager)
                self._done = done  # redo the interval eagerly from its start
                self.kind, self.note = "eager", _why(e)
        params, state = self._eager(params, state, n)
        self.recorder.keep_point(at[i + 1], params)
        return params, state, i + 1

    # -- eager -----------------------------------------------------------------------------------
    def _eager(self, params: Params, state: State, n: int) -> tuple[Params, State]:
        for _ in range(n):
            with torch.enable_grad():
                params, state = self.rule.step(self.ctx, params, state)
        self._done += n
        return params, state

    # -- the decision ----------------------------------------------------------------------------
    def _probe(self, params: Params, state: State, m: int) -> tuple[Params, State]:
        """Step ``m`` steps eagerly (the batch's first with its operations counted), watching the
        random streams; after :data:`PROBE_STEPS` steps (or the last one), decide."""
        rngs = (self.recorder.game.rng, self.recorder.rng)
        counters = [g.counter if g is not None else None for g in rngs]
        unusable = torch_private.missing(torch_private.COUNTING)
        if m and not self._probed and not unusable and self.mode != "off":
            (params, state), self._ops = torch_private.count_ops(
                lambda: self._eager(params, state, 1))
            self._probed, m = 1, m - 1
        params, state = self._eager(params, state, m)
        self._probed += m
        self._draws |= any(g is not None and g.counter != c for g, c in zip(rngs, counters))
        if self._probed < PROBE_STEPS and self._done < self.steps:
            return params, state
        if rngs[1] is not None:  # does recording draw? (a throw-away record, its draws undone)
            before = rngs[1].counter
            self.recorder.row(params)
            self._draws, rngs[1].counter = self._draws or rngs[1].counter != before, before
        self._decided = True
        if not self._draws and self.recorder.defer():
            self.ctx.memo = None  # records no longer evaluate the field the next step starts from
        if self.mode == "off":
            return params, state
        if unusable and self.mode == "auto":
            self.note = unusable
            return params, state
        if not self.fusable:
            self.note = ("auto: the run axis is aligned for the eager kernels only "
                         "(gamedyn.alignment); compile: on pads it for compiled ones")
            return params, state
        if self._draws:
            self.note = "the game draws random numbers (not traced)"
            return params, state
        if self._done >= self.steps:
            self.note = "no steps left after the probe"
            return params, state
        remaining = eager_seconds(self._ops, self.recorder.n_runs, self.steps - self._done)
        if self.mode == "auto" and remaining < AUTO_MIN_SECONDS:
            self.note = "auto: too short for a compilation to pay"
            return params, state
        unroll = unroll_for(self._ops)
        self.k = chunk_length(self.interval, unroll)
        self.m = records_per_chunk(self.interval, unroll) if self.interval == self.k else 1
        first = "rec" if self.interval == self.k else "steps"
        if unusable := torch_private.missing():
            self.note = unusable
            return params, state
        start = time.perf_counter()
        try:  # trace and compile now (on fake tensors: the point is untouched), before any chunk
            slots = self.recorder.blank_slots(self.m) if first == "rec" else ()
            fn = _Compiled(self._chunk(first), params, state, slots)
            if self.mode == "auto" and fn.nodes * SECONDS_PER_NODE > remaining:
                self.note = (f"auto: compiling ({fn.nodes} operations) would take longer than "
                             "stepping eagerly")
            else:
                fn.compile()
                self._fns[first], self.kind = fn, "compiled"
                self.note = torch_private.untested()
        except Exception as e:  # noqa: BLE001  (any tracing or compiler failure: stay eager)
            self.note = _why(e)
        self.compile_seconds = time.perf_counter() - start
        return params, state

    # -- compiled --------------------------------------------------------------------------------
    def _compiled(self, params: Params, state: State, i: int, n: int, until: int
                  ) -> tuple[Params, State, int] | None:
        """The ``n`` steps left to record ``i + 1`` (and maybe more records, up to ``until``). When
        the chunk is the record interval: as many chunks as fit (and as the recorder's stage
        takes), each of ``m`` whole intervals that end with their records, written into the
        recorder's slots (or None, to step eagerly, for a
        part of an interval or the last few intervals). Else chunks of ``k`` steps, the remainder
        eagerly, and the record compiled on its own."""
        at, rec, m = self.recorder.steps, self.recorder, self.m
        if self.interval == self.k:
            regular = len(at) - 1 if self.steps % self.interval == 0 else len(at) - 2  # the last
            q = (min(until, regular) - i) // m      # record a whole number of intervals from 0
            if n != self.interval or q < 1:
                return None
            slots = rec.slots(at[i + 1], m, q)
            params, state = self._run("rec", params, state, slots)
            n = len(slots) * m
            self._done += n * self.interval
            rec.wrote(at[i + 1], n)
            return params, state, i + n
        q, r = divmod(n, self.k)
        if q:
            params, state = self._run("steps", params, state, [()] * q)
            self._done += q * self.k
        params, state = self._eager(params, state, r)
        self._run("row", params, state, rec.slots(at[i + 1]))
        rec.wrote(at[i + 1], 1)
        return params, state, i + 1

    def _chunk(self, what: str) -> _Chunk:
        """The chunk ``steps`` (k steps), ``rec`` (m times: k steps and the record) or ``row``
        (the record); the records are written into the recorder's slots (each variable of each
        record, and the flags their :meth:`Recorder.judge` is added to: :meth:`Recorder.slots`)."""
        rule, ctx, recorder = self.rule, self.ctx, self.recorder
        k, m = (0, 1) if what == "row" else (self.k, self.m)

        def step(params: Params, state: State) -> tuple[Params, State]:
            with torch.enable_grad():  # as in eager stepping (unrolled differentiates updates)
                return rule.step(ctx, params, state)

        def write(*slots_parts: torch.Tensor) -> list:
            """The slots, then the m records' parts (those of each in turn): each record's rows
            into their slots, the sum of their judgements added to the flags."""
            n_slots = m * len(recorder.variables)
            slots, flags, parts = slots_parts[:n_slots], slots_parts[n_slots], slots_parts[n_slots + 1:]
            n = len(parts) // m
            records = [list(parts[j * n:(j + 1) * n]) for j in range(m)]
            rows = [r for record in records for p in record for r in p.unbind(0)]
            for slot, row in zip(slots, rows, strict=True):
                slot.copy_(row)
            flags.copy_(functools.reduce(torch.add, [recorder.judge_parts(r) for r in records], flags))
            return []

        return _Chunk(what, k, m, step, recorder.parts, write)

    def _run(self, what: str, params: Params, state: State,
             slots: list[tuple[torch.Tensor, ...]]) -> tuple[Params, State]:
        """The compiled chunk ``what`` called once per entry of ``slots`` (that call's slots), each
        call's params and state the next's (flattened once: that costs more than the call)."""
        fn = self._fns.get(what)
        if fn is None:  # compiled at its first call, for this batch's shapes and constants
            start = time.perf_counter()
            fn = _Compiled(self._chunk(what), params, state, slots[0])
            fn.compile()
            self._fns[what] = fn
            self.compile_seconds += time.perf_counter() - start
        flat = fn.flat(params, state)
        for s in slots:
            flat = fn.run(flat, s)
        return fn.tree(flat)


class _Unfusable(RuntimeError):
    pass


#: The chunks this process has compiled or loaded, by their graph's ``_Compiled.key``.
_LOADED: dict[str, Callable[[list[torch.Tensor]], Any]] = {}


@dataclasses.dataclass
class _Chunk:
    """What a compiled chunk computes: ``m`` times ``k`` steps followed (unless ``what`` is
    ``steps``) by a record, then ``write`` of the ``m`` records' parts into the slots (in place)."""

    what: str
    k: int
    m: int
    step: Callable[[Params, State], tuple[Params, State]]
    record: Callable[[Params], list[torch.Tensor]]
    write: Callable[..., list]


class _Compiled:
    """A chunk traced into one graph of ATen operations and compiled by Inductor.

    Tracing runs Python once on fake tensors (``make_fx``, ``tracing_mode="fake"``), autograd
    included: the field's ``torch.autograd.grad`` becomes the backward operations in the graph.
    Python control flow that depends on tensor values cannot be traced on fake tensors and raises
    (the batch then steps eagerly), so a traced graph computes what eager stepping computes whatever
    the values. One step, one record and the judgement of the records are each traced once, and
    their graphs copied into the chunk's graph as often as it holds them (tracing costs ~1 ms per
    operation: a 20-step chunk traced whole took longer than a batch's stepping); a step must give
    its tensors back in the layouts it took them in, so that each copy computes what the traced step
    did. Calling the compiled chunk skips Dynamo's frame evaluation and guards (which cost several
    times the fused kernel at R = 1,000): the inputs are the flat list of the params' and state's
    tensors, then the batch's other tensors (game matrices, learning rates: constants of the chunk,
    lifted to inputs so that batches of the same structure share one compiled graph).
    The rule's cost counters (``state["counts"]``, int64 ``[R]``) are state tensors like any other:
    each copy of the step advances them as an eager step would.
    """

    def __init__(self, chunk: _Chunk, params: Params, state: State,
                 slots: tuple[torch.Tensor, ...] = ()) -> None:
        self._in = (params, state)  # the template: the order of the graph's inputs
        flat = tree.leaves(self._in)
        if not all(isinstance(x, torch.Tensor) for x in flat):
            raise _Unfusable("the rule's or optimizer's state holds Python numbers")
        fakes = torch_private.fake_tensors(flat)
        root, graph = torch.nn.Module(), torch.fx.Graph()
        x = [graph.placeholder(f"arg{i}") for i in range(len(flat))]
        outs = [graph.placeholder(f"slot{i}") for i in range(len(slots))]
        for node, fake in zip(x + outs, fakes + torch_private.fake_tensors(slots, mode_of=fakes)):
            node.meta["val"] = fake
        if chunk.k:
            step = self._trace_step(chunk, fakes)
        if chunk.what != "steps":
            n_params = len(tree.leaves(params))
            record = _trace(lambda *p: chunk.record(tree.unflatten(params, p)),
                            torch_private.fake_tensors(fakes[:n_params]))
            write = _trace(chunk.write, torch_private.fake_tensors(
                [o.meta["val"] for o in outs] + _outputs(record) * chunk.m), writes=True)
        parts: list[torch.fx.Node] = []
        for _ in range(chunk.m):
            for _ in range(chunk.k):
                x = _inline(graph, root, "step", step, x)
            if chunk.what != "steps":
                parts += _inline(graph, root, "record", record, x[:n_params])
        if parts:
            _inline(graph, root, "write", write, outs + parts)
        graph.output(tuple(x))  # (a record alone gives its inputs back)
        gm = torch.fx.GraphModule(root, graph)
        self._constants = _lift_constants(gm)
        self._gm, self.nodes = gm, len(gm.graph.nodes)
        # its identity: its code and its inputs' layouts (the same for every batch of one structure
        # and size), under this torch
        layouts = [_layout(n.meta["val"]) for n in gm.graph.nodes if n.op == "placeholder"]
        self.key = hashlib.sha1(f"{torch.__version__}{gm.code}{layouts}".encode()).hexdigest()

    def _trace_step(self, chunk: _Chunk, fakes: list[torch.Tensor]) -> torch.fx.GraphModule:
        """One step traced from and to the flat params and state, its outputs in its inputs'
        layouts (made contiguous where the inputs were), so that its copies can follow each other."""

        def step(*flat: torch.Tensor) -> list[torch.Tensor]:
            out = tree.leaves(chunk.step(*tree.unflatten(self._in, flat)), self._in)
            return [o.contiguous() if i.is_contiguous() else o for o, i in zip(out, flat)]

        gm = _trace(step, fakes)
        if [_layout(t) for t in _outputs(gm)] != [_layout(t) for t in fakes]:
            raise _Unfusable("the step gives its tensors back in other shapes or layouts")
        return gm

    def compile(self) -> None:
        """Compile the graph, or load it from Inductor's cache; a graph this process has compiled
        or loaded before (an earlier batch of the same structure) is reused as it is."""
        if self.key not in _LOADED:
            fake = [n.meta["val"] for n in self._gm.graph.nodes if n.op == "placeholder"]
            _LOADED[self.key] = torch_private.compile_graph(self._gm, fake)
        self._fn = _LOADED[self.key]
        del self._gm

    def flat(self, params: Params, state: State) -> list[torch.Tensor]:
        """The chunk's inputs ``params`` and ``state`` as the flat list :meth:`run` takes."""
        return tree.leaves((params, state), self._in)

    def run(self, flat: Sequence[torch.Tensor], slots: tuple[torch.Tensor, ...] = ()
            ) -> Sequence[torch.Tensor]:
        """The chunk on the flat params and state (writing any record into ``slots``): the new ones."""
        return self._fn([*flat, *slots, *self._constants])

    def tree(self, flat: Sequence[torch.Tensor]) -> tuple[Params, State]:
        """The flat params and state as the trees they are."""
        return tree.unflatten(self._in, flat)


def _trace(fn: Callable[..., Any], inputs: list[torch.Tensor], writes: bool = False
           ) -> torch.fx.GraphModule:
    """``fn`` (flat tensors in, a flat list of tensors out) traced on fake tensors into a graph of
    ATen operations (Inductor's decompositions); fake ``inputs`` keep their fake mode, so that the
    graphs traced for one chunk share it. Only a chunk's ``write`` (``writes``) may change tensors
    in place (its slots)."""
    _set_up_compiler()  # before importing Inductor: it fixes its cache folder on first use
    gm = torch_private.make_fx(fn, inputs)
    if not all(isinstance(o, torch.fx.Node) for o in _output(gm).args[0]):
        raise _Unfusable("the chunk returns Python numbers")
    if not writes and any(torch_private.mutates(n.target) for n in gm.graph.nodes
                          if n.op == "call_function"):
        raise _Unfusable("the step changes tensors in place")
    return gm


def _output(gm: torch.fx.GraphModule) -> torch.fx.Node:
    return next(n for n in reversed(gm.graph.nodes) if n.op == "output")


def _outputs(gm: torch.fx.GraphModule) -> list[torch.Tensor]:
    """The fake tensors a traced graph returns."""
    return [n.meta["val"] for n in _output(gm).args[0]]


def _layout(t: torch.Tensor) -> tuple:
    return t.shape, t.stride(), t.dtype, t.device


def _inline(graph: torch.fx.Graph, root: torch.nn.Module, name: str, sub: torch.fx.GraphModule,
            args: list[torch.fx.Node]) -> list[torch.fx.Node]:
    """Copy ``sub``'s operations into ``graph`` on the nodes ``args``; return its outputs. Its
    tensor constants become ``root``'s attributes ``<name>.<attribute>`` (once)."""
    if not hasattr(root, name):
        root.add_module(name, sub)
    inputs = [n for n in sub.graph.nodes if n.op == "placeholder"]
    val_map: dict[torch.fx.Node, torch.fx.Node] = dict(zip(inputs, args))
    for node in sub.graph.nodes:
        if node.op == "get_attr":
            val_map[node] = graph.get_attr(f"{name}.{node.target}")
            val_map[node].meta = dict(node.meta)
    return list(graph.graph_copy(sub.graph, val_map))


def _lift_constants(gm: torch.fx.GraphModule) -> list[torch.Tensor]:
    """Turn the graph's tensor constants (the batch's game matrices, learning rates, …) into inputs
    placed after the others, and return them: the graph, and so Inductor's cache key, is then the
    same for every batch of the same structure and size, whatever their hyperparameters."""
    graph = gm.graph
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    like = last.meta["val"]
    lifted: dict[str, torch.fx.Node] = {}
    constants = []
    for node in list(graph.nodes):
        if node.op != "get_attr" or not isinstance(value := _attr(gm, node.target), torch.Tensor):
            continue
        if node.target not in lifted:
            with graph.inserting_after(last):
                last = lifted[node.target] = graph.placeholder(f"constant_{len(constants)}")
            last.meta["val"] = torch_private.fake_constant(value, like)
            constants.append(value)
        node.replace_all_uses_with(lifted[node.target])
        graph.erase_node(node)
    for owner in {target.split(".")[0] for target in lifted}:  # their values would be in the
        delattr(gm, owner)                                      # cache key
    gm.recompile()
    return constants


def _attr(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


def _why(e: BaseException, width: int = 300) -> str:
    """The ``stepping_note`` for a chunk that could not be compiled."""
    if isinstance(e, _Unfusable):
        return str(e)
    lines = str(e).strip().splitlines()
    # a compiler's message leads with a banner ("C++ compile error"); its first "error:" says why
    detail = [ln.strip() for ln in getattr(e, "output", "").splitlines() if "error" in ln.lower()]
    text = f"compilation failed: {type(e).__name__}: {(detail or lines or [''])[0]}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _set_up_compiler() -> None:
    """Inductor's on-disk compile cache goes to a stable folder unless the user chose one."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                          str(Path.home() / ".cache" / "gamedyn" / "inductor"))
