"""``trajectories.parquet`` assembled from the batches' part files a row group at a time, so that a
study's trajectories are never all in memory at once.

The table it writes is what concatenating the parts in pandas and sorting them would give: columns
``run_id`` (categorical; its categories are every run of ``runs.parquet``, in study order), ``step``,
``variable`` (categorical; the parts' variables when they all record the same, else their sorted
union) and ``value``; rows grouped by run in study order, steps ascending within a run, each step's
variables in the recorder's order.

Batches group runs by structure, so a study's order may interleave several parts. Every part is
itself in study order (its runs are, and :meth:`~gamedyn.results.ResultsFolder.write_part` keeps
each run's rows together, steps ascending), so the table is a merge: walking the runs in study
order, each stretch of consecutive runs from one part is the next rows of that part. Each part is
read a record batch at a time (:data:`PART_ROWS` long rows; a part written wide, a row per run and
record, is unfolded into them) and only while it has rows to give; the output is written in row
groups of :data:`ROW_GROUP_ROWS` rows, each encoded in a thread while the next is merged. Memory:
four output row groups (two being built, two waiting to be encoded), plus one record batch per part
whose runs interleave with the current stretch, whatever the study's size.

Each output row group's ``run_id`` dictionary holds the run ids from its first run to the next row
group's first run (a run whose rows span two row groups is in both), so that the dictionaries,
unified in order by pyarrow when read, are every run id in study order, including runs without
rows (stopped at step 0). The file's key-value metadata (:data:`RANGES_KEY`) lists each row group's
range of runs [first, last + 1) in study order, so that a reader of a few runs reads only their row
groups (:func:`row_groups_of`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import operator
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

COLUMNS = ["run_id", "step", "variable", "value"]


def schema(value: pa.DataType | None = None) -> pa.Schema:
    """The trajectories table's schema, its ``value`` column of type ``value`` (a study's
    ``trajectory_dtype``: float64, the default, or float32)."""
    return pa.schema([("run_id", pa.dictionary(pa.int32(), pa.string())), ("step", pa.int64()),
                      ("variable", pa.dictionary(pa.int32(), pa.string())),
                      ("value", value or pa.float64())])


SCHEMA = schema()
#: Rows per row group of ``trajectories.parquet`` (about 8 MiB while being built). A reader of a few
#: runs reads their row groups whole (:func:`row_groups_of`): ``phase_plane``'s 40 runs of a
#: 10,000-run study read 0.6 s with these, 1–1.7 s with row groups of 2¹⁸ rows (the file 5% larger).
ROW_GROUP_ROWS = 1 << 16
#: Rows per row group of a part file, and per record batch read from one (about 2 MB).
PART_ROWS = 1 << 16
#: How trajectories (parts and the assembled table) are encoded: dictionaries for the categorical
#: columns only (trying one on ``value``, unique floats, before falling back doubles the write time),
#: ``step`` as deltas, and column statistics (min/max per row group) for ``step`` only: a reader of
#: a few steps skips pages by them (``phase_plane`` of 10⁴ runs: 0.37 s with them, 1.4 s without),
#: while those of the other columns skip nothing (runs are found by :data:`RANGES_KEY`) and cost a
#: third of the write. Measured on 7·10⁶ rows: 0.25 s and 42 MB against pyarrow's defaults' 1.0 s
#: and 53 MB (0.32 s with every column's statistics); read back identically by any Parquet reader.
WRITE_OPTIONS = {"use_dictionary": ["run_id", "variable"],
                 "column_encoding": {"step": "DELTA_BINARY_PACKED"}, "write_statistics": ["step"]}

#: The key of ``trajectories.parquet``'s metadata listing its row groups' ranges of run ranks.
RANGES_KEY = "gamedyn.row_group_runs"

#: The key of a batch's trajectories part's metadata naming its variables, in a part written wide
#: (:meth:`Records.write_part`: a row per run and record, a column per variable).
PART_KEY = "gamedyn.variables"

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # run ranks, steps, variable codes, values


def _wide_rows(variables: int) -> int:
    """Rows per row group of a part written wide, and per record batch read from one: about
    :data:`PART_ROWS` long rows, ``variables`` per wide row."""
    return max(1, PART_ROWS // max(variables, 1))


@dataclasses.dataclass
class Records:
    """A batch's trajectories as the recorder holds them: ``values`` [R, T, K] of the ``variables``
    at ``steps`` [T], of which the first ``n_valid[r]`` records are run ``run_ids[r]``'s (the rest
    come after it stopped).

    :meth:`long` is the trajectories table (a row per run, record and variable); a batch's part is
    written wide (:meth:`write_part`: a row per run and record, a column per variable), a K-th of
    the long table's rows to write and to read back (the assembly unfolds them, :class:`_PartRows`)."""

    run_ids: list[str]
    steps: np.ndarray
    n_valid: np.ndarray
    variables: list[str]
    values: np.ndarray

    def long(self) -> pd.DataFrame:
        """The trajectories table: columns run_id and variable (categoricals of ``run_ids`` and
        ``variables``), step and value, grouped by run, records ascending, each record's variables
        in order."""
        valid = np.arange(len(self.steps))[None, :] < self.n_valid[:, None]
        rr, tt = np.nonzero(valid)
        K = len(self.variables)
        return pd.DataFrame({   # categorical columns built from integer codes: no string arrays
            "run_id": pd.Categorical.from_codes(np.repeat(rr.astype(np.int32), K),
                                                categories=self.run_ids),
            "step": np.repeat(self.steps[tt], K),
            "variable": pd.Categorical.from_codes(np.tile(np.arange(K, dtype=np.int32), len(rr)),
                                                  categories=self.variables),
            "value": self.values[rr, tt, :].reshape(-1),
        }, copy=False)  # (int32 codes and no consolidating copy: 7·10⁶ rows a second faster)

    def write_part(self, path: Path) -> None:
        """The batch's trajectories part, wide: columns run_id (dictionary of ``run_ids``, every
        run), step and ``v0`` … ``v{K-1}`` (the variables, named in the metadata's
        :data:`PART_KEY`), a row per run and valid record, grouped by run in the order of
        ``run_ids``, steps ascending; row groups of about :data:`PART_ROWS` long rows."""
        R, T, K = self.values.shape
        valid = (np.arange(T)[None, :] < self.n_valid[:, None]).reshape(-1)

        def kept(a: np.ndarray) -> np.ndarray:  # [R·T] → the valid records'
            return a if valid.all() else a[valid]

        columns = {
            "run_id": pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(R, dtype=np.int32), self.n_valid),
                pa.array(self.run_ids, pa.string())),
            "step": kept(np.tile(self.steps, R)),
            **{f"v{k}": kept(self.values[:, :, k].reshape(-1)) for k in range(K)}}
        table = pa.table(columns).replace_schema_metadata({PART_KEY: json.dumps(self.variables)})
        pq.write_table(table, path, row_group_size=_wide_rows(K),
                       use_dictionary=["run_id"], column_encoding={"step": "DELTA_BINARY_PACKED"},
                       write_statistics=["step"])


class DamagedPart(Exception):
    """A part file that cannot be read, or whose rows are not what a batch writes."""

    def __init__(self, path: Path, cause: Exception) -> None:
        super().__init__(f"{path}: {cause}")
        self.path, self.cause = path, cause


def part_variables(paths: list[Path]) -> list[str]:
    """The ``variable`` categories of the assembled table: those of the parts when they all agree
    (in the recorder's order), else the sorted union (as pandas gives when concatenating categoricals
    that differ). A wide part names its variables in its metadata; a long one's are its
    ``variable`` column's dictionaries (read a row group at a time), none when it has no rows (its
    runs all stopped at step 0): it then has no say."""
    seen = [v for v in (_part_variables(path) for path in paths) if v] or [[]]
    if all(v == seen[0] for v in seen):
        return seen[0]
    return sorted(set().union(*seen))


def row_filter(wanted: dict[str, list]) -> pc.Expression | None:
    """A pyarrow filter keeping the rows whose columns take one of the ``wanted`` values (typed as
    the table's columns, so that an empty list keeps nothing); None: keep everything."""
    types = {field.name: field.type for field in SCHEMA}
    keep = [pc.field(column).isin(pa.array(values, getattr(types[column], "value_type", types[column])))
            for column, values in wanted.items()]
    return functools.reduce(operator.and_, keep) if keep else None


def row_groups_of(f: pq.ParquetFile, ranks: list[int]) -> list[int] | None:
    """The row groups of an assembled ``trajectories.parquet`` (open as ``f``) that hold rows of
    the runs of these ranks (positions in study order), from its :data:`RANGES_KEY` metadata;
    None for a table written without it."""
    raw = (f.metadata.metadata or {}).get(RANGES_KEY.encode())
    if raw is None:
        return None
    ranges = np.asarray(json.loads(raw), dtype=np.int64).reshape(-1, 2)
    wanted = np.unique(np.asarray(ranks, dtype=np.int64))
    # group g holds ranks lo_g ≤ k < hi_g: some wanted rank in [lo_g, hi_g)
    first = np.searchsorted(wanted, ranges[:, 0])
    return np.flatnonzero((first < len(wanted)) & (wanted[np.minimum(first, len(wanted) - 1)]
                                                   < ranges[:, 1])).tolist() if len(wanted) else []


def table_variables(path: Path) -> list[str]:
    """The ``variable`` categories of an assembled ``trajectories.parquet`` (every row group holds
    them all: reading its first one's column is enough)."""
    f = pq.ParquetFile(path)
    if not f.num_row_groups:
        return []
    column = f.read_row_group(0, columns=["variable"]).column(0)
    return column.chunks[0].dictionary.to_pylist() if column.num_chunks else []


def _wide_variables(f: pq.ParquetFile) -> list[str] | None:
    """The variables of a part written wide (:meth:`Records.write_part`), None for a long one."""
    raw = (f.schema_arrow.metadata or {}).get(PART_KEY.encode())
    return None if raw is None else json.loads(raw)


def _part_variables(path: Path) -> list[str]:
    """A part's variables: a wide part's metadata, or a long part's ``variable`` dictionaries."""
    try:
        wide = _wide_variables(pq.ParquetFile(path))
    except Exception as e:  # damaged outside gamedyn's atomic writes (disk, hand edits)
        raise DamagedPart(path, e) from e
    return wide if wide is not None else _dictionary(path, "variable")


def _value_type(path: Path) -> pa.DataType:
    """The type of a part's values (float64, or float32 for ``trajectory_dtype: float32``)."""
    fields = pq.read_schema(path)
    name = "value" if "value" in fields.names else "v0"
    return fields.field(name).type if name in fields.names else pa.float64()


def _dictionary(path: Path, column: str) -> list[str]:
    """The values of a column's dictionaries (its categories), in order, over all row groups."""
    values: dict[str, None] = {}
    try:
        f = pq.ParquetFile(path)
        for i in range(f.num_row_groups):
            for chunk in f.read_row_group(i, columns=[column]).column(0).chunks:
                if not pa.types.is_dictionary(chunk.type):
                    chunk = chunk.dictionary_encode()
                values.update(dict.fromkeys(chunk.dictionary.to_pylist()))
    except Exception as e:  # damaged outside gamedyn's atomic writes (disk, hand edits)
        raise DamagedPart(path, e) from e
    return list(values)


def write_trajectories(out: Path, parts: list[Path], run_ids: list[str], part_of: np.ndarray) -> None:
    """Write ``out`` from the trajectories ``parts``: ``run_ids`` are the runs in study order, and
    ``part_of[i]`` is the index in ``parts`` of the part holding run ``run_ids[i]``."""
    variables = part_variables(parts)
    rank = {rid: i for i, rid in enumerate(run_ids)}
    var_code = {v: i for i, v in enumerate(variables)}
    last = {p: i for i, p in enumerate(part_of)}  # the last run (in study order) of each part
    readers: dict[int, _PartRows] = {}
    table_schema = schema(_value_type(parts[0])) if parts else SCHEMA
    with pq.ParquetWriter(out, table_schema, **WRITE_OPTIONS) as writer, _Background() as later:
        groups = _RowGroups(writer, pa.array(run_ids, pa.string()), pa.array(variables, pa.string()),
                            table_schema, later=later)
        for start, end in _stretches(part_of):
            p = int(part_of[start])
            if p not in readers:
                readers[p] = _PartRows(parts[p], rank, var_code)
            for chunk in readers[p].take(end):
                groups.add(chunk)
            if last[p] < end:  # the part has given all its runs: drop its buffer
                readers.pop(p).finish()
        groups.close()
        later.wait()
        writer.add_key_value_metadata({RANGES_KEY: json.dumps(groups.ranges)})


def _stretches(part_of: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of consecutive runs held by the same part."""
    cuts = np.flatnonzero(np.diff(part_of)) + 1
    bounds = [0, *cuts.tolist(), len(part_of)]
    return zip(bounds[:-1], bounds[1:])


class _PartRows:
    """The rows of one trajectories part as study ranks, steps, common variable codes and values,
    read a record batch at a time and handed out in order (:meth:`take`)."""

    def __init__(self, path: Path, rank: dict[str, int], var_code: dict[str, int]) -> None:
        self.path, self._rank, self._var = path, rank, var_code
        try:
            f = pq.ParquetFile(path)
            wide = _wide_variables(f)
            if wide is None:
                self._batches = f.iter_batches(batch_size=PART_ROWS, columns=COLUMNS)
            else:
                self._batches = f.iter_batches(batch_size=_wide_rows(len(wide)))
        except Exception as e:
            raise DamagedPart(path, e) from e
        # a wide part's variables as the table's codes, one per value column
        self._wide = None if wide is None else self._lookup(wide, var_code, "variable")
        self._buf: Chunk | None = None
        self._pos = 0
        self._last = (-1, -1)  # (rank, step) of the last row read: rows must not go back
        self._lookups: dict[str, tuple[pa.Array, np.ndarray]] = {}

    def take(self, end: int) -> Iterator[Chunk]:
        """The next rows whose runs come before rank ``end``, in chunks (views of the buffer)."""
        while self._buf is not None and self._pos < len(self._buf[0]) or self._read():
            ranks = self._buf[0]
            stop = self._pos + int(np.searchsorted(ranks[self._pos:], end))
            if stop > self._pos:
                yield tuple(a[self._pos:stop] for a in self._buf)  # type: ignore[misc]
                self._pos = stop
            if stop < len(ranks):
                return

    def finish(self) -> None:
        """Check that the part has no rows left (each run's rows are where the runs part says)."""
        if (self._buf is not None and self._pos < len(self._buf[0])) or self._read():
            raise DamagedPart(self.path, ValueError("it holds rows of runs it does not list"))

    def _read(self) -> bool:
        """Load the next non-empty record batch; False at the end of the part."""
        while True:
            try:
                batch = next(self._batches)
            except StopIteration:
                self._buf = None
                return False
            except Exception as e:
                raise DamagedPart(self.path, e) from e
            if batch.num_rows:
                break
        ranks = self._codes(batch.column(0), self._rank, "run_id")
        steps = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        self._check_order(ranks, steps)
        if self._wide is None:
            variables = self._codes(batch.column(2), self._var, "variable")
            values = batch.column(3).to_numpy(zero_copy_only=False)  # float64, or float32 as stored
        else:  # a row per run and record: a long row per variable
            K = len(self._wide)
            if batch.num_columns != 2 + K:
                raise DamagedPart(self.path, ValueError(f"it has {batch.num_columns - 2} value "
                                                        f"columns for {K} variables"))
            values = (np.stack([c.to_numpy(zero_copy_only=False) for c in batch.columns[2:]], 1)
                      .reshape(-1) if K else np.empty(0))
            ranks, steps = np.repeat(ranks, K), np.repeat(steps, K)
            variables = np.tile(self._wide, len(values) // K if K else 0)
        self._buf, self._pos = (ranks, steps, variables, values), 0
        return True

    def _codes(self, column: pa.Array, mapping: dict[str, int], name: str) -> np.ndarray:
        """A dictionary (or string) column as codes of ``mapping``; the dictionary's lookup table is
        kept while the next batches share it."""
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        known = self._lookups.get(name)
        if known is None or not known[0].equals(column.dictionary):
            table = self._lookup(column.dictionary.to_pylist(), mapping, name)
            identity = bool((table == np.arange(len(table))).all())
            known = self._lookups[name] = (column.dictionary, None if identity else table)
        indices = column.indices.to_numpy(zero_copy_only=False)
        return indices.astype(np.int32, copy=False) if known[1] is None else known[1][indices]

    def _lookup(self, values: list[str], mapping: dict[str, int], name: str) -> np.ndarray:
        """``values`` as ``mapping``'s codes (int32)."""
        try:
            return np.array([mapping[v] for v in values], dtype=np.int32)
        except KeyError as e:
            raise DamagedPart(self.path, ValueError(f"{name} {e} is not in the runs parts")) from None

    def _check_order(self, ranks: np.ndarray, steps: np.ndarray) -> None:
        """Rows grouped by run in study order, steps ascending: (rank, step) never goes down, checked
        as one key rank·2⁶²⁻ᵇ + step (b bits for the ranks; steps are smaller than that span)."""
        top = max(1, int(ranks.max()), self._last[0])
        span = np.int64(1) << np.int64(62 - top.bit_length())
        if steps.min() < 0 or steps.max() >= span:
            raise DamagedPart(self.path, ValueError("its steps are out of range"))
        key = np.concatenate(([self._last[0] * span + max(self._last[1], -1)],
                              ranks.astype(np.int64) * span + steps))
        if not (key[1:] >= key[:-1]).all():
            raise DamagedPart(self.path, ValueError("its rows are not grouped by run in study order "
                                                    "with steps ascending"))
        self._last = (int(ranks[-1]), int(steps[-1]))


class _RowGroups:
    """Buffers chunks and writes them as row groups of at least :data:`ROW_GROUP_ROWS` rows, in
    ``later``'s thread. A row group is written once the next one starts (its ``run_id`` dictionary
    reaches up to that one's first run), the last one at :meth:`close` (its dictionary reaches the
    last run)."""

    def __init__(self, writer: pq.ParquetWriter, run_ids: pa.Array, variables: pa.Array,
                 table_schema: pa.Schema, later: _Background) -> None:
        self._writer, self._run_ids, self._variables = writer, run_ids, variables
        self._later = later
        self._schema = table_schema
        self._chunks: list[Chunk] = []
        self._n = 0
        self._pending: Chunk | None = None
        self._lo = 0  # the first run id of the next row group's dictionary
        self.ranges: list[tuple[int, int]] = []  # each written row group's runs [lo, hi)

    def add(self, chunk: Chunk) -> None:
        self._chunks.append(chunk)
        self._n += len(chunk[0])
        if self._n >= ROW_GROUP_ROWS:
            self._seal()

    def close(self) -> None:
        if self._chunks:
            self._seal()
        if self._pending is not None:
            self._write(self._pending, len(self._run_ids))

    def _seal(self) -> None:
        group: Chunk = tuple(c[0] if len(c) == 1 else np.concatenate(c)  # type: ignore[assignment]
                             for c in zip(*self._chunks))
        self._chunks, self._n = [], 0
        if self._pending is not None:
            self._write(self._pending, max(int(group[0][0]), int(self._pending[0][-1]) + 1))
        self._pending = group

    def _write(self, group: Chunk, hi: int) -> None:
        ranks, steps, variables, values = group
        lo = min(self._lo, int(ranks[0]))
        table = pa.Table.from_arrays([
            pa.DictionaryArray.from_arrays(pa.array(ranks - lo, pa.int32()), self._run_ids[lo:hi]),
            pa.array(steps, pa.int64()),
            pa.DictionaryArray.from_arrays(pa.array(variables, pa.int32()), self._variables),
            pa.array(values, self._schema.field("value").type),
        ], schema=self._schema)
        self._later.do(self._writer.write_table, table, row_group_size=len(table))
        self.ranges.append((lo, hi))
        self._lo = hi


class _Background:
    """Calls done one after another in a thread, in the order given, while the caller prepares the
    next (encoding a row group releases the GIL: it overlaps the reading and merging of the next);
    at most ``ahead`` wait. Leaving the context waits for them all and raises the first error."""

    def __init__(self, ahead: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: collections.deque[Future] = collections.deque()
        self._ahead = ahead

    def do(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        while len(self._pending) >= self._ahead:
            self._pending.popleft().result()  # (memory: at most ``ahead`` row groups wait)
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def wait(self) -> None:
        """Wait for every call given so far (raising the first error)."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
