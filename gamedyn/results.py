"""The results folder: atomic part files per batch, a lock, the failures table, assembled tables,
and ``gamedyn.load``."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from . import basins, streaming
from .errors import StudyError

#: libyaml's safe loader and dumper where PyYAML has them (the same documents, ~6× faster to read a
#: results folder's ``study.yaml``, which lists every seed: 0.34 s → 0.06 s for 10,000 seeds).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_meta(path: Path) -> Any:
    """A results folder's ``study.yaml`` (or any YAML file gamedyn wrote), parsed."""
    return yaml.load(path.read_text(), Loader=_LOADER)

try:
    import fcntl
except ImportError:  # pragma: no cover  (not POSIX: no lock)
    fcntl = None

STUDY_FILE = "study.yaml"
LOCK_FILE = ".lock"
FAILURES_FILE = "failures.parquet"
TMP_SUFFIX = ".tmp"
FAILURE_COLUMNS = ["run_id", "batch_id", "game_label", "rule_label", "error", "message", "traceback"]
#: Columns of ``runs.parquet`` that measure time: the only ones that differ between two runs of a
#: study (resumed or not, any number of workers, loky or Dask; README, Results).
TIMING_COLUMNS = ("wall_time", "compile_time")


class RunsFailedWarning(UserWarning):
    """Some runs of a study failed; their tracebacks are in ``failures.parquet`` (``.failures``)."""


class AllRunsFailed(StudyError):
    """Every run of a study failed: there are no results to load, only ``failures.parquet``."""


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, flush it to disk, then rename it
    into place: ``path`` is either absent or complete, whenever the process dies. A temporary file
    left by a killed process (``.<name>.<random>.tmp``) is never read, and is removed by the next
    run of the study (:meth:`ResultsFolder.clean_temporaries`)."""
    atomic_write_all([(path, write)])


def atomic_write_all(files: list[tuple[Path, Callable[[Path], Any]]]) -> None:
    """Write several files all or nothing: each ``write(tmp_path)`` to a temporary file beside its
    path, flushed to disk; only when every one is written are they renamed into place, in the
    order given. An exception in any write, or in a rename, leaves none of them (and no temporary
    file) behind: those already renamed into place are removed again. Only a process killed between
    two renames can leave the first ones alone."""
    tmps: list[str] = []
    placed: list[Path] = []
    try:
        for path, write in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
            os.close(fd)
            tmps.append(tmp)
            write(Path(tmp))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            with open(tmp, "rb") as f:  # durable before visible: a power loss leaves no empty part
                os.fsync(f.fileno())
        for (path, _), tmp in zip(files, tmps):
            os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


class ResultsFolder:
    """``<out>/<study name>/``: ``study.yaml``, ``parts/``, ``runs.parquet``, ``trajectories.parquet``,
    ``failures.parquet`` (only while some runs failed), ``figures/`` and ``.lock``. It belongs to one
    study (by the resolved study's hash): a folder holding another study is refused rather than mixed
    or overwritten, unless ``fresh`` asks to replace it. One process at a time works in it
    (:meth:`locked`)."""

    def __init__(self, root: str | Path, name: str) -> None:
        self.path = Path(root) / name
        self.parts = self.path / "parts"

    def _refuse_foreign(self) -> None:
        if self.path.exists() and not (self.path / STUDY_FILE).exists() and any(
                p.name != LOCK_FILE for p in self.path.iterdir()):
            raise StudyError("name", f"{self.path} exists and is not a gamedyn results folder "
                                     f"(no {STUDY_FILE}); choose another name or --out")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (``fcntl.flock`` on ``.lock``) for the block, or refuse with a
        StudyError naming the process that holds it. The OS releases the lock when its process
        ends, however it ends, so a killed run never leaves a stale lock."""
        self._refuse_foreign()  # before creating anything in someone else's folder
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        with open(self.path / LOCK_FILE, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise StudyError("", (
                    f"{self.path} is in use by another gamedyn process ({holder}) running this "
                    f"study; wait for it to finish or stop it, then run again (or use another "
                    f"--out)")) from None
            try:
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
                f.flush()
                yield
            finally:
                f.seek(0)
                f.truncate()
                f.flush()
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def claim(self, study_hash: str, spec: dict[str, Any], source_text: str | None,
              fresh: bool, files: dict[str, str] | None = None) -> None:
        """Make the folder this study's, refusing one that holds something else (call it while
        holding the lock). ``files``: the files the study names and their digests
        (:attr:`gamedyn.study.Study.files`), kept to say which changed."""
        meta = self.path / STUDY_FILE
        self._refuse_foreign()
        if meta.exists():
            try:
                old = read_meta(meta) or {}
            except yaml.YAMLError:
                old = {}
            if old.get("hash") != study_hash and not fresh:
                raise StudyError("name", (
                    f"{self.path} holds results of a different study named "
                    f"{spec['name']!r} (hash {old.get('hash')} here, {study_hash} now): "
                    f"{_what_changed(old, spec, files or {})}; rerun with --fresh to replace "
                    f"those results, or give the study another name"))
            if old.get("hash") != study_hash:
                for child in self.path.iterdir():  # everything but the lock we hold
                    if child.name == LOCK_FILE:
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        self.clean_temporaries()
        doc = {"hash": study_hash, "study": spec, "source": source_text, "files": files or {}}
        atomic_write(meta, lambda p: p.write_text(yaml.dump(doc, Dumper=_DUMPER, sort_keys=False)))

    def clean_temporaries(self) -> list[Path]:
        """Remove what a killed process left half done (only safe under the lock: no other process
        is writing here): temporary files, and a trajectories part without its runs part (a process
        killed between the two renames of :meth:`write_part`). Returns what was removed."""
        removed = []
        for folder in (self.path, self.parts):
            if folder.is_dir():
                for p in folder.glob(f".*{TMP_SUFFIX}"):
                    p.unlink(missing_ok=True)
                    removed.append(p)
        if self.parts.is_dir():
            suffix = ".trajectories.parquet"
            for p in self.parts.glob(f"*{suffix}"):
                if not self.part(p.name[:-len(suffix)], "runs").exists():
                    p.unlink(missing_ok=True)
                    removed.append(p)
        return removed

    def part(self, batch_id: str, table: str) -> Path:
        return self.parts / f"{batch_id}.{table}.parquet"

    def has(self, batch_id: str) -> bool:
        return self.part(batch_id, "runs").exists() and self.part(batch_id, "trajectories").exists()

    def write_part(self, batch_id: str, runs: pd.DataFrame,
                   trajectories: pd.DataFrame | streaming.Records) -> None:
        """A batch's pair of parts, all or nothing: both are written to temporary files and flushed;
        only then is the trajectories part renamed into place, and the runs part last, so a batch
        counts as done only when its runs part exists. An error in either write (a column pyarrow
        cannot store, a full disk) leaves neither part; a process killed between the two renames
        leaves a trajectories part alone, which the next run removes (:meth:`clean_temporaries`)
        before deciding what to compute. The trajectories are stored grouped by run in the order
        of ``runs``, steps ascending (what :func:`gamedyn.streaming.write_trajectories` merges), in
        row groups of :data:`~gamedyn.streaming.PART_ROWS` rows (what it reads at a time): a
        batch's :class:`~gamedyn.streaming.Records` wide, a trajectories table as it is."""
        if isinstance(trajectories, streaming.Records):
            if trajectories.run_ids != runs["run_id"].tolist():
                raise ValueError("the records' runs are not the runs table's, in its order")
            write = trajectories.write_part
        else:
            table = _grouped_by_run(trajectories, runs["run_id"])

            def write(p: Path) -> None:
                table.to_parquet(p, row_group_size=streaming.PART_ROWS, **streaming.WRITE_OPTIONS)
        atomic_write_all([(self.part(batch_id, "trajectories"), write),
                          (self.part(batch_id, "runs"), lambda p: runs.to_parquet(p))])

    def write_failures(self, failures: pd.DataFrame) -> None:
        """``failures.parquet`` holds the failures of the latest attempt; none: no file."""
        path = self.path / FAILURES_FILE
        if len(failures):
            atomic_write(path, lambda p: failures.to_parquet(p))
        else:
            path.unlink(missing_ok=True)

    def _read_part(self, batch_id: str, table: str) -> pd.DataFrame:
        path = self.part(batch_id, table)
        try:
            return pd.read_parquet(path)
        except Exception as e:  # damaged outside gamedyn's atomic writes (disk, hand edits)
            raise _damaged(path, e) from None

    def assemble(self, batch_ids: list[str], order: list[str]) -> None:
        """``runs.parquet`` and ``trajectories.parquet`` from the parts, runs in study order
        (no parts: no tables). The runs parts are small (a row per run) and concatenated in memory;
        the trajectories are streamed part by part into ``trajectories.parquet``
        (:mod:`gamedyn.streaming`), never all in memory. ``runs.parquet`` is written last: it marks
        the tables complete."""
        if not batch_ids:
            for name in ("runs.parquet", "trajectories.parquet"):
                (self.path / name).unlink(missing_ok=True)
            return
        parts = [self._read_part(b, "runs") for b in batch_ids]
        runs = _uniform(pd.concat(parts, ignore_index=True))
        part_of = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        rank = {rid: i for i, rid in enumerate(order)}
        by_rank = runs["run_id"].map(rank).to_numpy().argsort(kind="stable")
        runs = runs.iloc[by_rank].reset_index(drop=True)
        runs = basins.with_attractors(runs)   # attractor ids over the whole study, not per batch
        paths = [self.part(b, "trajectories") for b in batch_ids]
        try:
            atomic_write(self.path / "trajectories.parquet", lambda p: streaming.write_trajectories(
                p, paths, runs["run_id"].tolist(), part_of[by_rank]))
        except streaming.DamagedPart as e:
            raise _damaged(e.path, e.cause) from None
        atomic_write(self.path / "runs.parquet", lambda p: runs.to_parquet(p))


def _damaged(path: Path, e: Exception) -> StudyError:
    """Remove a part that cannot be read (damaged outside gamedyn's atomic writes: disk, hand
    edits), so that a rerun recomputes its batch, and say so."""
    path.unlink(missing_ok=True)
    return StudyError("", f"{path} could not be read ({type(e).__name__}: {e}); it has been "
                          f"removed: run the study again to recompute that batch")


def _uniform(runs: pd.DataFrame) -> pd.DataFrame:
    """Each object column stored one way across the parts (:func:`gamedyn.study.uniform_column`):
    parts written before the study's columns were made uniform may hold a number in one part and
    text in another."""
    from .study import uniform_column

    for column in [c for c, dtype in runs.dtypes.items() if pd.api.types.is_object_dtype(dtype)]:
        values = [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
                  for v in runs[column].tolist()]
        new = uniform_column(values)
        if new is not values:
            runs[column] = pd.Series(new, index=runs.index, dtype=object)
    return runs


def _grouped_by_run(trajectories: pd.DataFrame, run_ids: pd.Series) -> pd.DataFrame:
    """The trajectories with each run's rows together in the order of ``run_ids``, steps ascending
    (a stable reorder, done only when they are not so already: batches write them so)."""
    column = trajectories["run_id"]
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.equals(pd.Index(run_ids)):
        codes = column.cat.codes.to_numpy()   # a batch's own: no recoding
    else:
        codes = pd.Categorical(column, categories=run_ids).codes
    steps = trajectories["step"].to_numpy()
    if len(codes) < 2 or _run_major(codes, steps):
        return trajectories
    return trajectories.iloc[np.lexsort((steps, codes))].reset_index(drop=True)


def _run_major(codes: np.ndarray, steps: np.ndarray) -> bool:
    """Whether rows are grouped by run code ascending, steps ascending within a run: where the code
    goes up, anything; where it stays, the step may not go down (a 7·10⁶-row batch in ~20 ms)."""
    same = codes[1:] == codes[:-1]
    return bool((codes[1:] >= codes[:-1]).all() and (steps[1:][same] >= steps[:-1][same]).all())


@dataclasses.dataclass
class Results:
    """A study's results: ``runs`` (one row per run), ``trajectories`` (long format:
    run_id, step, variable, value), the resolved ``study`` spec, and the folder ``path``.

    ``failures`` lists the runs whose batch raised (one row per run: ``run_id``, ``batch_id``,
    ``game_label``, ``rule_label``, ``error``, ``message``, ``traceback``); it is empty when every run
    succeeded, and ``runs``/``trajectories`` then hold only the successful runs. ``info`` holds what
    :func:`gamedyn.run_study` adds about the execution (runs computed / found on disk, elapsed time).
    """

    path: Path
    study: dict[str, Any]
    runs: pd.DataFrame
    _trajectories: pd.DataFrame | None = dataclasses.field(default=None, repr=False)
    _failures: pd.DataFrame | None = dataclasses.field(default=None, repr=False)
    info: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def failures(self) -> pd.DataFrame:
        if self._failures is None:
            self._failures = read_failures(self.path)
        return self._failures

    @property
    def trajectories(self) -> pd.DataFrame:
        """The whole trajectories table (read once, then kept). For a large study, read only what
        you need with :meth:`trajectories_for`."""
        if self._trajectories is None:
            self._trajectories = pd.read_parquet(self.path / "trajectories.parquet")
        return self._trajectories

    def trajectories_for(self, run_ids: Iterable[str] | None = None,
                         variables: Iterable[str] | None = None,
                         steps: Iterable[int] | None = None) -> pd.DataFrame:
        """The rows of the trajectories table of these runs, variables and steps (None: all), read
        from ``trajectories.parquet`` with pyarrow filters a row group at a time, so memory holds
        the subset only. Same columns, dtypes and order as :attr:`trajectories` (``run_id`` and
        ``variable`` keep all their categories), e.g.
        ``r.trajectories_for(r.runs.run_id[r.runs.dynamics == "cycling"], ["distance"])``."""
        wanted = {column: [cast(v) for v in values] for column, values, cast in (
            ("run_id", run_ids, str), ("variable", variables, str), ("step", steps, int))
            if values is not None}
        if self._trajectories is not None:
            t = self._trajectories
            keep = np.ones(len(t), dtype=bool)
            for column, values in wanted.items():
                keep &= t[column].isin(values).to_numpy()
            return t[keep].reset_index(drop=True)
        path = self.path / "trajectories.parquet"
        f, groups = pq.ParquetFile(path), None
        if run_ids is not None:  # only the row groups that hold these runs, where the file says
            rank = {rid: i for i, rid in enumerate(self.runs["run_id"])}
            groups = streaming.row_groups_of(f, [rank[r] for r in wanted["run_id"] if r in rank])
        if groups is None:
            t = pd.read_parquet(path, filters=streaming.row_filter(wanted))
        else:
            table = f.read_row_groups(groups) if groups else f.schema_arrow.empty_table()
            t = table.filter(streaming.row_filter(wanted)).to_pandas()
        return t.assign(
            run_id=t["run_id"].cat.set_categories(self.runs["run_id"].rename(None)),
            variable=t["variable"].cat.set_categories(streaming.table_variables(path)))

    def players(self, run_id: str) -> dict[str, Any]:
        """Run ``run_id``'s final players as modules of the user's classes, ``{"gen": generator,
        "disc": discriminator}`` (``torch.nn.Module`` objects holding its final weights), for a game
        that saves them (``module_gan`` with ``save_players: true``, the default): the runs table's
        ``players`` column, decoded by :func:`gamedyn.modules.decode_players`."""
        from .modules import decode_players

        row = self.runs.loc[self.runs["run_id"] == run_id]
        if row.empty:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        blob = row["players"].iloc[0] if "players" in row else None
        if not isinstance(blob, str):
            raise StudyError("save_players", f"run {run_id!r} ({row['game_label'].iloc[0]}) kept no final "
                                             f"weights: module_gan keeps them with save_players: true")
        return decode_players(blob)

    def wide(self, variables: list[str] | None = None) -> pd.DataFrame:
        """Trajectories pivoted to one row per (run, step), one column per variable, joined with
        the runs' config columns — handy for phase-plane plots. With ``variables``, only those are
        read (:meth:`trajectories_for`) unless the whole table is loaded already."""
        t = self.trajectories if variables is None else self.trajectories_for(variables=variables)
        w = t.pivot_table(index=["run_id", "step"], columns="variable", values="value",
                          observed=True).reset_index()
        w.columns.name = None
        w["run_id"] = w["run_id"].astype(str)
        return w.merge(self.runs, on="run_id", how="left")

    def aggregate(self, by: str | list[str] | None = None) -> pd.DataFrame:
        """Seed aggregates: one row per configuration (the run columns but the seed and the initial
        point, or the columns ``by``) with its runs, failed seeds, outcome frequencies and their
        Wilson 95 % intervals, and the median and IQR of ``growth_rate``, ``final_distance`` and
        the fit metrics (:func:`gamedyn.aggregate.aggregate`)."""
        from .aggregate import aggregate, failed_configs

        return aggregate(self.runs, by, failed=failed_configs(self.study, self.failures))


def read_failures(path: str | Path) -> pd.DataFrame:
    """The failures table of a results folder (empty, with its columns, when nothing failed)."""
    f = Path(path) / FAILURES_FILE
    return pd.read_parquet(f) if f.exists() else pd.DataFrame(columns=FAILURE_COLUMNS)


def failures_note(path: Path, failures: pd.DataFrame, n_ok: int) -> str:
    """One line: how many runs failed, the first error, and where the tracebacks are."""
    n = len(failures)
    first = failures.iloc[0]
    lines = str(first["message"]).strip().splitlines()
    message = lines[0][:200] if lines else ""
    batches = failures["batch_id"].nunique()
    return (f"{n} of {n + n_ok} runs failed ({batches} batch{'es' if batches > 1 else ''}; first: "
            f"{first['error']}: {message} [{first['rule_label']} on {first['game_label']}]); "
            f"tracebacks in {path / FAILURES_FILE} (gamedyn.load('{path}').failures); "
            f"`gamedyn run` again retries only the failed runs")


def load(path: str | Path, *, warn: bool = True) -> Results:
    """Load ``results/<study>``: ``.runs`` and ``.trajectories`` DataFrames, the ``.study`` spec and
    ``.failures`` (runs whose batch raised; empty when none did, else a RunsFailedWarning is issued)."""
    path = Path(path)
    meta = path / STUDY_FILE
    if not meta.exists():
        raise StudyError("", f"{path} is not a gamedyn results folder (no {STUDY_FILE})")
    failures = read_failures(path)
    if not (path / "runs.parquet").exists():
        if len(failures):
            raise AllRunsFailed("", f"{path}: every run failed, so there are no results; "
                                    + failures_note(path, failures, 0))
        raise StudyError("", f"{path} holds an unfinished study (no runs.parquet yet): "
                             f"run it again with `gamedyn run` to finish it")
    doc = read_meta(meta)
    runs = pd.read_parquet(path / "runs.parquet")
    if warn and len(failures):
        warnings.warn(failures_note(path, failures, len(runs)), RunsFailedWarning, stacklevel=2)
    return Results(path, doc["study"], runs, _failures=failures)


def _what_changed(old: dict[str, Any], spec: dict[str, Any], files: dict[str, str]) -> str:
    """Why a results folder's study (``old``, its study.yaml) is not ``spec`` with ``files``: the
    files it names whose contents changed, and/or the study itself."""
    before = old.get("files")   # None: written before study.yaml kept them
    changed = [] if before is None else sorted(
        f for f in set(before) | set(files) if before.get(f) != files.get(f))
    parts = []
    if old.get("study") != spec:
        parts.append("the study file changed")
    if changed:
        parts.append(f"{', '.join(changed)} changed (a file the study names; its runs are new "
                     f"runs)")
    return " and ".join(parts) or "the study changed"
