"""The recorder: every ``record_every`` steps, what a convergence study looks at, for all runs at once."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable

import numpy as np
import torch

from .games.base import Game, Params
from .rules.context import Context, FieldMemo

#: A player with at most this many coordinates per run has each one recorded; a larger one, its norms.
MAX_COORDS = 16
#: Consecutive eager records judged and copied out together (:meth:`Recorder.keep_point`).
STORE_EVERY = 32
#: Records that compiled chunks write into the recorder's stage before they are copied into its
#: values (:meth:`Recorder.slots`): one alive check's worth (``batch.ALIVE_EVERY``), fewer where
#: they would take more than :data:`STAGE_BYTES`.
STAGE_RECORDS = 64
#: The largest stage (bytes; at least one chunk's records): one that stays in the last-level cache
#: while the chunks write it and it is copied out (64 records of 7 variables of 1,000 runs: 3.6 MB).
STAGE_BYTES = 4 << 20
#: The largest record array (bytes) a finished batch leaves to the process's next batch
#: (:func:`values_array`).
SPARE_BYTES = 1 << 30

_spare: list[np.ndarray] = []  # at most one flat array, left by a finished batch (Recorder.release)
_spare_lock = threading.Lock()  # batches may run in threads (Dask workers)


def values_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array for a batch's records: the one an earlier batch of this process left
    (:meth:`Recorder.release`) where it holds them and is at most twice their size (a smaller array,
    a probe's, leaves it for the batches), else new memory (after dropping what was left where it
    is too small). Writing records into memory already written costs about half as much as into
    fresh memory, whose pages the system must first find and zero (measured: 2.6 against 6 ms for
    the 56 MB of a 1,000-run × 10,000-step bilinear batch), so that a worker's batches after its
    first record at about the cost of their stepping alone (``benchmarks/bench_toy.py
    --records-only``)."""
    n = math.prod(shape)
    with _spare_lock:
        spare = _spare[0] if _spare else None
        if spare is not None and spare.size < n:
            _spare.clear()  # freed before the new array takes its place in memory
        elif spare is not None and spare.dtype == dtype and spare.size <= 2 * n:
            _spare.clear()
            return spare[:n].reshape(shape)
    del spare
    return np.empty(shape, dtype)


def drop_spare() -> None:
    """Free what a finished batch left for the next (:func:`values_array`): at the end of a study,
    so that a process that goes on (a notebook) does not hold it."""
    with _spare_lock:
        _spare.clear()


def _leave(values: np.ndarray) -> None:
    """Keep the memory of ``values`` for the next :func:`values_array`, if larger than what is kept."""
    flat = (values.base if values.base is not None else values).reshape(-1)  # the whole array
    if flat.nbytes <= SPARE_BYTES:
        with _spare_lock:
            if not _spare or _spare[0].nbytes < flat.nbytes:
                _spare[:] = [flat]


#: The groups of recorded variables a study's ``record:`` may name (besides variables by name).
GROUPS = ("params", "losses", "grad_norms", "distance", "metrics")


def group_of(name: str, index: int, n_coords: int) -> str:
    """The group of the recorded variable ``name``, the ``index``-th of a record whose first
    ``n_coords`` are the parameters' coordinates (or norms)."""
    if index < n_coords:
        return "params"
    if name.startswith("loss."):
        return "losses"
    if name.startswith("grad_norm."):
        return "grad_norms"
    return "distance" if name == "distance" else "metrics"


def kept(variables: list[str], n_coords: int, record: list[str] | None) -> list[int]:
    """The indices of the ``variables`` that a study's ``record:`` keeps in the trajectories table
    (None: all): those of its groups (:data:`GROUPS`) and those it names."""
    if record is None:
        return list(range(len(variables)))
    return [i for i, v in enumerate(variables) if v in record or group_of(v, i, n_coords) in record]


def _norm(flat: torch.Tensor) -> torch.Tensor:
    """Each run's Euclidean norm of ``flat`` [R, n]: |x| for one element, whose reduction would
    vectorise across runs (:mod:`gamedyn.alignment`)."""
    return flat[:, 0].abs() if flat.shape[1] == 1 else flat.norm(dim=1)


def _root_sum(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Each run's Euclidean norm of the [R, k] ``blocks`` together: √(Σ squares), summed from the
    first block, or |x| for a single element, which is √(x²) exactly wherever x² neither overflows
    nor underflows (and the true norm where it does), without a square root (~20 cycles a vector:
    a quarter of a compiled toy game's record; most toy players have one coordinate)."""
    if len(blocks) == 1 and blocks[0].shape[1] == 1:
        return blocks[0][:, 0].abs()
    total = (blocks[0] ** 2).sum(1)
    for b in blocks[1:]:
        total = total + (b ** 2).sum(1)
    return torch.sqrt(total)


def _largest(rows: list[torch.Tensor]) -> torch.Tensor:
    """The largest absolute value of ``rows`` elementwise (NaN where any is NaN)."""
    return functools.reduce(torch.maximum, [r.abs() for r in rows])


def _coord_names(player: str, name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [f"{player}.{name}"]
    return [f"{player}.{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]


class Recorder:
    """Records, at step 0, every ``record_every`` steps and the last step, per run:

    - each player's parameters: every coordinate (``gen.theta``, ``gen.x[0]``) for small players,
      otherwise each parameter tensor's norm (``norm.gen.w``);
    - ``loss.<player>`` and ``grad_norm.<player>`` (norm of the player's own gradient);
    - ``distance`` to the equilibrium when the game knows one;
    - whatever the game's :meth:`~gamedyn.games.base.Game.metrics` returns (fit metrics, …).

    A run whose recorded values (metrics aside: a metric may be undefined, NaN) are not all finite,
    or whose distance exceeds
    ``blowup`` × max(1, d_0), is *stopped*: its later records are discarded and it is labelled
    ``diverged`` by :mod:`gamedyn.diagnose`. The others go on unaffected.
    """

    def __init__(self, game: Game, n_runs: int, steps: int, record_every: int, blowup: float,
                 keep: int | None = None, memo: FieldMemo | None = None,
                 tile: Callable[[int], Game] | None = None, record: list[str] | None = None):
        """``n_runs`` is the run axis of the tensors it sees; only the first ``keep`` runs (default:
        all) are stored and judged (the rest pad the run axis, :mod:`gamedyn.runaxis`). The field
        of each eager record goes to ``memo``, for the rule's next step (:class:`FieldMemo`).
        ``tile(m)`` builds the same game for m copies of the run axis (copy j's run r at j·R + r),
        which lets eager records be evaluated many at once (:meth:`defer`). ``record`` is the
        study's ``record:`` (None: everything): the gradient norms, which cost a field evaluation
        per record, are computed only where it keeps them or where the diagnosis needs them (they
        are the distance to stationarity of a game without a known equilibrium), and the losses
        (a forward pass) only where it keeps them or the gradient norms are computed; the blow-up
        check then sees the variables computed."""
        self.game, self.memo, self.tile, self.record_choice = game, memo, tile, record
        self._tiled: Recorder | None = None  # evaluates deferred records (see defer)
        self.ctx = Context(game, {})  # recording is not charged to the rule's counters
        self.rng = game.rng.fork(1) if game.rng is not None else None  # apart from training noise
        self.eq = game.equilibrium()
        def keeps(group: str, prefix: str) -> bool:
            return record is None or any(r == group or r.startswith(prefix) for r in record)

        self.field = self.eq is None or keeps("grad_norms", "grad_norm.")
        self.losses = self.field or keeps("losses", "loss.")
        self.steps = sorted(set(range(0, steps + 1, record_every)) | {steps})
        self._index = {s: i for i, s in enumerate(self.steps)}
        self._small = {p: sum(math.prod(s) for s in named.values()) <= MAX_COORDS
                       for p, named in game.shapes().items()}
        self.coord_vars = [
            n for p, named in game.shapes().items() for name, shape in named.items()
            for n in (_coord_names(p, name, shape) if self._small[p] else [f"norm.{p}.{name}"])]
        self.variables: list[str] = []
        self.values: np.ndarray | None = None  # [T, V, R], allocated at the first record
        self.n_runs = n_runs
        self.keep = n_runs if keep is None else keep
        self.n_valid = np.zeros(self.keep, dtype=np.int64)
        self.alive_runs = np.ones(self.keep, dtype=bool)
        self._judged = self._stored = 0
        # eager records not yet stored: rows [V, R], or points [R, P] once deferred (keep_point)
        self._pending: list[tuple[int, torch.Tensor]] = []
        self.stop_reason = np.full(self.keep, None, dtype=object)
        self.blowup = blowup

    @property
    def complete(self) -> bool:
        """The coordinates recorded are every parameter of every player (no player is summarised
        by its tensors' norms)."""
        return all(self._small.values())

    def columns(self, params: Params, step: int | None = None) -> dict[str, torch.Tensor]:
        """Every recorded variable at ``params``, each [R, k] (k coordinates) or [R]: pure tensor
        code (no bookkeeping), so that :mod:`gamedyn.fuse` can compile it with the steps. The game's
        metrics see ``step`` as ``game.record_step``: the step of an eager record, None for any
        other evaluation (a probe's throw-away row, a compiled or deferred record)."""
        R = self.n_runs
        cols: dict[str, torch.Tensor] = {}
        for player, named in params.items():
            for name, p in named.items():
                flat = p.detach().reshape(R, -1)
                key = f"{player}.{name}"
                cols[key] = flat if self._small[player] else _norm(flat)
        with torch.enable_grad(), self.game.using(self.rng):
            detached = {pl: {k: v.detach() for k, v in named.items()} for pl, named in params.items()}
            if self.field:
                drawn = self.rng.counter if self.rng is not None else None
                losses, grads = self.ctx.losses_and_grad(params)
                if self.memo is not None and (self.rng is None or self.rng.counter == drawn):
                    self.memo.put(params, grads)  # the game drew nothing: the rule's own field
            elif self.losses:
                losses = self.ctx.losses(detached)
            self.game.record_step = step   # e.g. module_gan's snapshots at chosen record steps
            metrics = self.game.metrics(detached)
        if self.losses:
            for p in params:
                cols[f"loss.{p}"] = losses[p].detach()
        if self.field:
            for p in params:
                cols[f"grad_norm.{p}"] = _root_sum([g.reshape(R, -1) for g in grads[p].values()])
        if self.eq is not None:
            cols["distance"] = _root_sum([(params[pl][k].detach() - self.eq[pl][k]).reshape(R, -1)
                                          for pl in params for k in params[pl]])
        for name, value in metrics.items():
            cols[f"metric:{name}"] = value.detach()
        return cols

    def parts(self, params: Params) -> list[torch.Tensor]:
        """The record at ``params`` as [k, R] blocks of variables, in the order of
        ``self.variables``: one record is their concatenation (:meth:`row`); a compiled chunk writes
        their rows into the record's :meth:`slots`."""
        return self._blocks(self.columns(params))

    def _blocks(self, cols: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [c.reshape(self.n_runs, -1).T.to(self.game.dtype) for c in cols.values()]

    def row(self, params: Params, step: int | None = None) -> torch.Tensor:
        """The record at ``params`` as one [V, R] tensor (V = ``len(self.variables)``): the
        :meth:`parts` stacked, built with one concatenation and one transpose."""
        return self._row(self.columns(params, step))

    def _row(self, cols: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([c.reshape(self.n_runs, -1) for c in cols.values()], 1).to(self.game.dtype).T

    def _core(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """The core variables (metrics aside) of records ``rows`` [..., V, R], one [..., R] each."""
        return list(rows[..., : rows.shape[-2] - self._metric_width, :].unbind(-2))

    def _size(self, core: list[torch.Tensor]) -> torch.Tensor:
        """A run's size from its core variables: its distance to the equilibrium, else its largest
        coordinate."""
        if self._size_col is not None:
            return core[self._size_col]
        return _largest(core[: len(self.coord_vars)])

    def judge(self, rows: torch.Tensor) -> torch.Tensor:
        """How far past stopping each run is at records ``rows`` ([..., V, R] → [..., R]): 0 where it
        goes on; NaN or +inf where its core values (metrics aside) are not all finite; else
        positive where its size exceeds ``blowup`` × max(1, size at step 0). Stored records add it
        to their run's flag, which :meth:`alive` reads as ``!= 0``."""
        return self._verdict(self._core(rows))

    def judge_parts(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`judge` of one record given as its :meth:`parts` ([k, R] blocks → [R])."""
        rows = [r for p in parts for r in p.unbind(0)]
        return self._verdict(rows[: len(rows) - self._metric_width])

    def _verdict(self, core: list[torch.Tensor], limit: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`judge` from the core variables. Pure elementwise tensor code over the run axis, so
        that :mod:`gamedyn.fuse` compiles it into the loop of the steps, and written for Inductor
        (a reduction, ``amax`` or ``isfinite().all()``, becomes a loop of its own; ``0·v`` is folded
        to 0): v − v is 0 where v is finite and NaN where it is not, so their sum is NaN exactly
        where a value is not finite — two instructions a value, where comparing the largest absolute
        value with the largest float took three times as long in a compiled record. The size
        (:meth:`_size`: the distance, or the largest coordinate, NaN-propagating) is not finite
        where a coordinate is not, and its excess over the limit then is not either (``clamp_min``
        propagates NaN): only the other core variables (losses, gradient norms, norms of large
        players' tensors) are summed."""
        size = self._size(core)
        limit = self._limit if limit is None else limit
        n_coords, s = len(self.coord_vars), self._size_col
        others = [v - v for i, v in enumerate(core) if i >= n_coords and i != s]
        excess = (size - limit).clamp_min(0)
        return functools.reduce(torch.add, others, excess)

    def record(self, step: int, params: Params) -> None:
        """Record ``params`` at ``step`` (eagerly; the first record names the variables)."""
        cols = self.columns(params, step)
        row = self._row(cols)
        if self.values is None:
            n_params = sum(len(named) for named in params.values())  # the first entries of cols
            names = list(cols)[n_params:]
            self.variables = self.coord_vars + [n.removeprefix("metric:") for n in names]
            self._metric_width = sum(c.reshape(self.n_runs, -1).shape[1]
                                     for n, c in cols.items() if n.startswith("metric:"))
            self._size_col = (self.variables.index("distance") if self.eq is not None else None)
            # [T, V, R]: a record's columns contiguous. Allocated by numpy, which asks for huge
            # pages (first writes fault 3x faster than into torch's memory), or left by an earlier
            # batch (values_array), and not filled: a record not written is past every run's n_valid
            # (the batch stopped early), and arrays() sets those to NaN. Records are written through
            # torch views of them (slots), on the batch's device: the arrays themselves on the CPU,
            # else copies synced by alive()
            dtype = torch.empty(0, dtype=self.game.dtype).numpy().dtype
            self.values = values_array((len(self.steps), len(self.variables), self.n_runs), dtype)
            self._rows_t = (torch.from_numpy(self.values) if row.device.type == "cpu" else
                            torch.empty(self.values.shape, dtype=row.dtype, device=row.device))
            self._flags_t = row.new_zeros(self.n_runs)
            self._stage: torch.Tensor | None = None  # compiled chunks' records (slots)
            self._staged = (0, 0)  # the records [a, b) in the stage (from its row 0), to copy out
        if step == 0:
            self._limit = self.blowup * self._size(self._core(row)).clamp_min(1.0)
        self.store(step, row)

    def defer(self) -> bool:
        """From now on, evaluate eager records :data:`STORE_EVERY` at a time (:meth:`keep_point`), where
        that is exact: a game whose players are all small (recorded coordinate by coordinate), built
        by ``tile``, and whose records draw no random numbers (the caller checked). A record is then
        one copy of the point per step, and its losses, field and metrics are computed with those of
        the records around it on a run axis of ``STORE_EVERY · R`` runs — the same game on copies of
        the runs, so the same values (:mod:`gamedyn.runaxis`): a toy game's eager step with a record
        costs about a third of what it did. Returns whether it defers."""
        if self.tile is not None and self.complete and self.values is not None:
            self.flush()  # the rows held so far: the buffer holds points from now on
            self._tiled = Recorder(self.tile(STORE_EVERY), STORE_EVERY * self.n_runs, 0, 1, self.blowup,
                                   record=self.record_choice)
            self._leaves = [(pl, k, shape) for pl, named in self.game.shapes().items()
                            for k, shape in named.items()]
        return self._tiled is not None

    def keep_point(self, step: int, params: Params) -> None:
        """Keep the eager record at ``params`` at ``step``, to be stored with the records that
        follow it: up to :data:`STORE_EVERY` consecutive ones are judged and copied out at once
        (the same flags and values as one by one: :meth:`judge` is exact elementwise work). Held as
        its :meth:`row`, or, once :meth:`defer` said so, as a copy of the point, evaluated with
        the others when they are stored."""
        if self._pending and self._index[self._pending[-1][0]] + 1 != self._index[step]:
            self.flush()
        if self._tiled is None:
            self._pending.append((step, self.row(params, step)))
        else:
            self._pending.append((step, torch.cat([params[pl][k].detach().reshape(self.n_runs, -1)
                                                   for pl, k, _ in self._leaves], 1)))
        if len(self._pending) >= STORE_EVERY:
            self.flush()

    def _evaluate(self, points: list[torch.Tensor]) -> torch.Tensor:
        """The records [M, V, R] of held points ([R, P] each), evaluated on the tiled game (the
        points padded to STORE_EVERY by copies of the last)."""
        flat = torch.cat(points + [points[-1]] * (STORE_EVERY - len(points)))  # [M·R, P]
        params: Params = {}
        at = 0
        for pl, k, shape in self._leaves:
            size = math.prod(shape)
            params.setdefault(pl, {})[k] = flat[:, at:at + size].reshape(-1, *shape)
            at += size
        rows = self._tiled._row(self._tiled.columns(params))                  # [V, M·R]
        rows = rows.reshape(rows.shape[0], STORE_EVERY, self.n_runs).transpose(0, 1)
        return rows[:len(points)]

    def flush(self) -> None:
        """Store the records :meth:`keep_point` holds."""
        if self._pending:
            pending, self._pending = self._pending, []
            held = [x for _, x in pending]
            self._store(pending[0][0], torch.stack(held) if self._tiled is None
                        else self._evaluate(held))

    def store(self, step: int, rows: torch.Tensor) -> None:
        """Keep the record at ``step`` ([V, R]), or the consecutive records from ``step`` on
        ([M, V, R]), computed elsewhere. Which runs stopped is settled later, for many records at
        once (:meth:`alive`)."""
        self.flush()
        self._store(step, rows)

    def _store(self, step: int, rows: torch.Tensor) -> None:
        rows = rows.detach()
        bad = self.judge(rows)
        m = rows.shape[0] if rows.dim() == 3 else 1
        i = self._index[step]
        self._rows_t[i:i + m] = rows
        self._flags_t += bad.sum(0) if rows.dim() == 3 else bad
        self._stored = i + m

    def slots(self, step: int, m: int = 1, calls: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """Where compiled chunks write the records from ``step`` on, ``m`` records a call, for up to
        ``calls`` calls (at least one; fewer where the stage is full): each call's slots, its records'
        variables in turn (``m·V`` [R] tensors) and the stop flags [R], to which the chunk adds its
        records' :meth:`judge`. The chunks then say :meth:`wrote`.

        The slots are views of a stage of :data:`STAGE_RECORDS` records (fewer where the batch has
        fewer, or where they would take more than :data:`STAGE_BYTES`), made once, whose records are
        copied into the values at the next check (:meth:`alive`) or when the stage is full: a
        record's views made for it cost more than the record (~0.5 µs each, V per record), and one
        tensor per variable and record is what lets Inductor store each from the loop of the steps
        (a tensor written in parts gets a loop of its own for each part)."""
        i, V = self._index[step], len(self.variables)
        if self._stage is None or len(self._stage) < m:
            self._unstage()
            fit = STAGE_BYTES // (V * self.n_runs * self._rows_t.element_size())
            size = max(m, min(STAGE_RECORDS, fit, len(self.steps)))  # no larger than the values
            self._stage = self._rows_t.new_empty((size, V, self.n_runs))
            self._views = self._stage.view(-1, self.n_runs).unbind(0)
            self._calls: dict[tuple[int, int], list[tuple[torch.Tensor, ...]]] = {}
        base, end = self._staged
        if i != end or i + m > base + len(self._stage):
            self._unstage()
            base = end = i
            self._staged = (i, i)
        at = i - base
        if (at, m) not in self._calls:  # the same from each check to the next: made once
            self._calls[at, m] = [self._views[(at + c * m) * V:(at + c * m + m) * V] + (self._flags_t,)
                                  for c in range((len(self._stage) - at) // m)]
        return self._calls[at, m][:calls]

    def blank_slots(self, m: int) -> tuple[torch.Tensor, ...]:
        """New tensors laid out as one call's :meth:`slots` of ``m`` records (templates for
        compiling)."""
        return tuple(self._flags_t.new_empty(self.n_runs) for _ in range(m * len(self.variables) + 1))

    def wrote(self, step: int, m: int) -> None:
        """The ``m`` records from ``step`` on were written into the :meth:`slots` given for them."""
        self.flush()
        self._stored = self._index[step] + m
        self._staged = (self._staged[0], self._stored)

    def _unstage(self) -> None:
        """Copy the records written into the stage into the values (by numpy on the CPU: torch's
        copy into fresh memory, its pages first touched by two threads, took 2-4× as long)."""
        base, end = self._staged
        if end > base:
            if self._stage.device.type == "cpu":
                self.values[base:end] = self._stage[:end - base].numpy()
            else:
                self._rows_t[base:end] = self._stage[:end - base]
        self._staged = (end, end)

    def alive(self) -> bool:
        """Settle the records stored since the last call and say whether any run is still alive.

        A run stops at its first record that :meth:`judge` flags; that record and the later ones
        are discarded, and its ``stop_reason`` is ``nonfinite`` or ``blowup``. The records' flags
        are summed per run as they are stored (nonzero, or NaN, once a run is flagged); the records
        of newly flagged runs (found when more flags are nonzero than runs stopped) are judged
        again here to find the first."""
        self.flush()
        self._unstage()
        lo, hi = self._judged, self._stored
        if self._rows_t.device.type != "cpu":  # bring the records written on the device over
            self.values[lo:hi] = self._rows_t[lo:hi].cpu().numpy()
        flags = self._flags_t[:self.keep].cpu().numpy()
        # a flag, once nonzero, stays so (judgements are ≥ 0 or NaN): new ones only if more are
        alive = np.count_nonzero(self.alive_runs)
        hit = (np.flatnonzero((flags != 0) & self.alive_runs)
               if np.count_nonzero(flags) > self.keep - alive else ())
        if len(hit):
            rows = torch.from_numpy(self.values[lo:hi][:, :, hit])               # [t, V, hit]
            bad = (self._verdict(self._core(rows), self._limit[hit].cpu()) != 0).numpy()
            if not bad.any(0).all():
                raise RuntimeError("a run was flagged but none of its records is (gamedyn bug)")
            first = lo + bad.argmax(0)                                       # first bad record
            self.n_valid[hit] = first
            n_core = self.values.shape[1] - self._metric_width
            finite = np.isfinite(self.values[first, :n_core, hit]).all(-1)          # [hit, n_core]
            self.stop_reason[hit] = np.where(finite, "blowup", "nonfinite")
            self.alive_runs[hit] = False
            alive -= len(hit)
        self.n_valid[self.alive_runs] = hi
        self._judged = hi
        return alive > 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps [T], values [R, T, V] with NaN past each run's stop, n_valid [R])."""
        self.alive()
        values = self.values[..., :self.keep].transpose(2, 0, 1).astype(float, copy=True)
        n_valid = self.n_valid
        values[np.arange(values.shape[1])[None, :] >= n_valid[:, None]] = np.nan
        return np.asarray(self.steps, dtype=np.int64), values, n_valid

    def release(self) -> None:
        """Give the record array's memory to the process's next batch (:func:`values_array`), once
        its records are read (:meth:`arrays` copies them): the recorder records no more."""
        if self.values is not None:
            values, self.values = self.values, None
            self._rows_t = self._stage = self._views = self._calls = None
            _leave(values)
