"""Run a study: pack runs into batches, execute them with joblib, write each batch atomically.

Never lose work:

- a finished batch is written atomically (temporary file, then rename) as a pair of part files by
  the process that runs the study (or by the local worker that stepped it, in parallel), so a
  study killed at any point (Ctrl-C, ``kill -9``, a crash, a power loss) resumes where it stopped
  on ``gamedyn run`` again: batches whose parts exist are not recomputed, temporary files of the
  killed run are ignored and removed, and the final tables equal those of an uninterrupted run;
- one process at a time works in a results folder (an OS lock, released by the OS when the process
  dies): a second one is refused with a StudyError naming the first;
- a batch that raises does not stop the others: its runs go to ``failures.parquet`` with the
  traceback, the successful runs are assembled, and a rerun retries only the failed batches; so
  does a batch whose parts cannot be written (the pair is written all or nothing: no trajectories
  part stays without its runs part).

Results do not depend on the number of workers nor on the backend: each run's trajectory is a
function of its own configuration and seed only.

Backends: ``loky`` (joblib's process pool on this machine, ``jobs`` workers) and ``dask`` (a Dask
distributed cluster through joblib's Dask backend). With Dask, each task carries a batch's run
configurations (and the source of the study's plugin files, and the bytes of the data files the
batch names) and returns its compact :class:`~gamedyn.batch.BatchResult`; this process writes the
part files, so the workers need no filesystem shared with it, only gamedyn (and the packages it
needs) installed.

Local workers are loky processes (:mod:`gamedyn.pool`; ``gamedyn run`` starts ``jobs`` − 1 of them
before it imports torch). A study too small for a pool of ``jobs`` workers to pay
(:func:`in_process`: starting a worker costs a fresh Python importing torch and gamedyn, about
1.5 s of a core) is stepped in this process, shortest batches first, with the started workers
taking the longest ones once they are ready (:func:`_local`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import io
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky.process_executor import BrokenProcessPool
from tqdm import tqdm

from . import data, fuse, plugins, pool, runaxis
from .batch import BatchResult, batch_id, run_batch
from .errors import StudyError
from .record import MAX_COORDS, drop_spare
from .results import FAILURE_COLUMNS, Results, ResultsFolder, load
from .rules import RULES
from .study import Run, Study, built_game

BACKENDS = ("loky", "dask")
CONNECT_TIMEOUT = 20.0  # seconds to reach a Dask scheduler, and to wait for its first worker
PROGRESS_INTERVAL = 30.0  # seconds between progress lines when stderr is not a terminal
#: Seconds a loky worker takes to start: a fresh Python importing torch and gamedyn (2 cores).
WORKER_START_SECONDS = 2.0
#: :func:`in_process`'s price of one gradient evaluation of an eager step of a toy game, its record
#: included (measured on 2 cores: the quickstart's 40,500 evaluations step in about 2 s).
EVALUATION_SECONDS = 5e-5
#: Most padded runs a toy game's batch may have for :func:`in_process`'s price to hold (below it,
#: an eager step costs its dispatch, whatever the runs).
IN_PROCESS_MAX_RUNS = 1024


@dataclasses.dataclass
class BatchFailure:
    """What a batch that raised sends back instead of its results."""

    batch_id: str
    run_ids: list[str]
    error: str
    message: str
    traceback: str


@dataclasses.dataclass
class BatchWritten:
    """What a local worker sends back for a batch whose parts it wrote itself (:func:`execute`)."""

    batch_id: str
    n_runs: int


def execute(runs: list[Run], thresholds: dict[str, float], threads: int | None,
            plugin_sources: dict[str, str] | None = None, compile: str = "auto",
            device: str = "cpu", folder: ResultsFolder | None = None,
            data_files: dict[str, bytes] | None = None) -> BatchResult | BatchFailure | BatchWritten:
    """Run one batch in a worker; an exception becomes a :class:`BatchFailure` (with its traceback)
    so that it does not stop the other batches. With ``folder`` (a local worker, which sees this
    machine's files), the worker writes the batch's parts itself, in parallel with the others, and
    sends back only that it did (or the failure to write them). ``plugin_sources`` and
    ``data_files`` (:func:`_data_files`) are what a worker without the study's filesystem needs."""
    try:
        if plugin_sources:
            provide_plugins(plugin_sources)
        if data_files:
            data.provide(data_files)
        result = run_batch(runs, thresholds, threads, device=device, compile=compile)
    except Exception as e:
        return BatchFailure(batch_id(runs), [r.run_id for r in runs], type(e).__name__, str(e),
                            traceback.format_exc())
    if folder is None:
        return result
    return _write(folder, result) or BatchWritten(result.batch_id, len(result.runs))


def provide_plugins(sources: dict[str, str]) -> None:
    """Import plugin files from their source text, so that a worker without the study's filesystem
    (a Dask worker on another machine) has them; ``run_batch`` then finds them already imported."""
    for spec, text in sources.items():
        plugins.load(spec, text)


def run_study(study: Study, out: str | Path = "results", jobs: int = 1, fresh: bool = False,
              progress: bool = True, *, backend: str = "loky", scheduler: Any = None,
              compile: str = "auto", device: str = "cpu",
              memory_budget: int | str | None = None) -> Results:
    """Execute every batch of ``study`` not already on disk under ``out/<name>`` and assemble the
    results; returns them as :class:`Results`, whose ``.failures`` lists the runs whose batch raised.

    ``backend="dask"`` runs the batches on a Dask distributed cluster: ``scheduler`` is its address
    (``tcp://HOST:PORT``) or a ``distributed.Client``; ``jobs`` is then ignored (the cluster's
    threads set the parallelism). ``compile`` (auto | on | off) chooses fused, compiled stepping
    (:mod:`gamedyn.fuse`); ``device`` is where batches run (``cpu``, ``cuda``). ``memory_budget``
    (MiB, or a string such as ``"512MiB"``) overrides the study's: the most memory one batch may use,
    which caps its runs (:mod:`gamedyn.memory`); it changes the batches, not the results nor the
    study's hash. Raises :class:`StudyError` for a bad device, mode or budget, a folder in use or
    holding another study, an unreachable cluster, or a study of which every run failed.
    """
    check_device(device)
    if compile not in fuse.MODES:
        raise StudyError("--compile", f"{compile!r} is not accepted: expected one of "
                                      f"{', '.join(fuse.MODES)}")
    if backend not in BACKENDS:
        raise StudyError("--backend", f"{backend!r} is not accepted: expected one of "
                                      f"{', '.join(BACKENDS)}")
    start = time.perf_counter()
    batches = study.batches(memory_budget)  # a bad budget is refused before anything is written
    folder = ResultsFolder(out, study.name)
    source = Path(study.source).read_text() if study.source else None
    with folder.locked():
        folder.claim(study.hash, study.spec, source, fresh, study.files)
        ids = [batch_id(b) for b in batches]
        todo = sorted((b for b, i in zip(batches, ids) if not folder.has(i)), key=_work, reverse=True)
        n_todo = sum(map(len, todo))
        with _progress(study, len(study.runs) - n_todo, progress) as bar:
            try:
                failed = _execute_all(study, todo, folder, bar, progress, backend, scheduler, jobs,
                                      compile, device)
            finally:
                drop_spare()  # what the batches stepped here left: not held after the study
        bad = {f.batch_id for f in failed}
        folder.write_failures(_failures_table(study, failed))
        folder.assemble([i for i in ids if i not in bad], [r.run_id for r in study.runs])
        results = load(folder.path, warn=False)
    results.info.update(runs=len(study.runs), computed=n_todo - len(results.failures),
                        on_disk=len(study.runs) - n_todo, failed=len(results.failures),
                        batches=len(batches), backend=backend,
                        elapsed=time.perf_counter() - start)
    return results


def in_process(batches: list[list[Run]], jobs: int) -> bool:
    """Whether this process steps ``batches`` itself, beside the ``jobs`` − 1 workers it started
    (:func:`_local`), because ``jobs`` workers would not pay for their start: only toy games
    (every player at most :data:`~gamedyn.record.MAX_COORDS` coordinates per run) in batches of at
    most :data:`IN_PROCESS_MAX_RUNS` padded runs, whose eager stepping, priced at
    :data:`EVALUATION_SECONDS` per evaluation (steps × the rule's :meth:`~gamedyn.rules.Rule.work`),
    takes less alone than :data:`WORKER_START_SECONDS` plus its share on ``jobs`` workers. Where it
    runs changes no result (each run's numbers are its own; README "Deterministic tables").
    ``GAMEDYN_ALWAYS_POOL=1`` in the environment starts the workers whatever the study (for tests
    and debugging of the worker path)."""
    if jobs == 1 or os.environ.get("GAMEDYN_ALWAYS_POOL") == "1":
        return jobs == 1
    workers = min(pool.cores_for(jobs), len(batches))
    if workers <= 1:
        return True
    for batch in batches:
        game = built_game(batch[0].config["game"])
        if (runaxis.padded_size(len(batch)) > IN_PROCESS_MAX_RUNS
                or any(math.prod(s) > MAX_COORDS for named in game.shapes().values()
                       for s in named.values())):
            return False
    serial = sum(b[0].config["steps"] * _evaluations(b) * EVALUATION_SECONDS for b in batches)
    return serial < WORKER_START_SECONDS + serial / workers


def _evaluations(batch: list[Run]) -> float:
    rule = batch[0].config["rule"]
    return RULES.get(rule["name"]).work(rule)


def _work(batch: list[Run]) -> float:
    """A batch's rough cost (padded runs × steps × the rule's evaluations per step): the longest
    batches start first, so that no worker idles at the end while one runs a long batch alone. The
    order changes neither the results nor the tables (assembled in study order)."""
    cfg = batch[0].config
    return runaxis.padded_size(len(batch)) * cfg["steps"] * _evaluations(batch)


def _execute_all(study: Study, todo: list[list[Run]], folder: ResultsFolder, bar: tqdm,
                 progress: bool, backend: str, scheduler: Any, jobs: int, compile: str = "auto",
                 device: str = "cpu") -> list[BatchFailure]:
    """Run the batches on the backend, writing each finished one as it arrives; returns the
    failures."""
    failed: list[BatchFailure] = []
    if not todo:
        return failed
    with _backend(backend, scheduler, jobs, study.runs[0].plugins, todo) as plan:
        run = functools.partial(execute, thresholds=study.thresholds, threads=plan.threads,
                                plugin_sources=plan.sources, compile=compile, device=device)
        if plan.local is None:
            tasks = (delayed(run)(b, data_files=_data_files(b) if plan.ships_data else None)
                     for b in todo)
            results = iter(Parallel(n_jobs=plan.n_jobs, return_as="generator_unordered")(tasks))
        else:
            results = _local(todo, run, functools.partial(run, folder=folder), plan.n_jobs,
                             plan.local)
        while True:
            try:
                result = next(results)
            except StopIteration:
                break
            except plan.lost as e:
                raise StudyError("", (
                    f"{plan.what} ({type(e).__name__}: {_first_line(str(e))}); finished batches "
                    f"are saved in {folder.path}: run again to resume{plan.hint}")) from None
            if isinstance(result, BatchWritten):
                bar.update(result.n_runs)
                continue
            if isinstance(result, BatchResult):
                unwritten = _write(folder, result)
                if unwritten is None:
                    bar.update(len(result.runs))
                    continue
                result = unwritten
            failed.append(result)
            bar.set_postfix_str(f"{sum(len(f.run_ids) for f in failed)} failed", refresh=False)
            if progress:
                bar.write(f"batch {result.batch_id} ({len(result.run_ids)} runs) failed: "
                          f"{result.error}: {_first_line(result.message)}", file=sys.stderr)
            bar.update(len(result.run_ids))
    return failed


def _write(folder: ResultsFolder, result: BatchResult) -> BatchFailure | None:
    """Write a batch's pair of parts (all or nothing); an error while writing them is a failure of
    that batch, recorded like one that raised while stepping (None: written)."""
    try:
        folder.write_part(result.batch_id, result.runs, result.records)
    except Exception as e:  # noqa: BLE001  (any write error: this batch failed, the others go on)
        return BatchFailure(result.batch_id, result.runs["run_id"].astype(str).tolist(),
                            type(e).__name__, f"writing the batch's results failed: {e}",
                            traceback.format_exc())
    return None


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here, in one line (``cuda`` without a GPU, a typo)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise StudyError("--device", f"{device!r} is not a device: expected cpu, cuda or cuda:N"
                         ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StudyError("--device", f"{device!r}: no CUDA device is available here "
                                     f"(torch {torch.__version__}); use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise StudyError("--device", f"{device!r} is not supported: expected cpu or cuda")


def _first_line(text: str, width: int = 200) -> str:
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= width else line[:width - 1] + "…"


def _failures_table(study: Study, failed: list[BatchFailure]) -> pd.DataFrame:
    """One row per failed run, in study order."""
    by_id = {r.run_id: r for r in study.runs}
    rows = [{"run_id": rid, "batch_id": f.batch_id,
             "game_label": by_id[rid].columns.get("game_label"),
             "rule_label": by_id[rid].columns.get("rule_label"),
             "error": f.error, "message": f.message, "traceback": f.traceback}
            for f in failed for rid in f.run_ids]
    rank = {r.run_id: i for i, r in enumerate(study.runs)}
    rows.sort(key=lambda row: rank[row["run_id"]])
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


class _Lines(io.TextIOBase):
    """A stream for tqdm when stderr is not a terminal (CI logs, files): each status becomes one
    plain line, with no carriage returns or padding."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, s: str) -> int:
        text = s.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def _progress(study: Study, done: int, enabled: bool) -> tqdm:
    """A bar over runs with rate and ETA; on a non-terminal, a line every PROGRESS_INTERVAL s."""
    tty = sys.stderr.isatty() if hasattr(sys.stderr, "isatty") else False
    options: dict[str, Any] = {} if tty else {
        "file": _Lines(sys.stderr), "mininterval": PROGRESS_INTERVAL,
        "maxinterval": PROGRESS_INTERVAL, "ascii": True, "ncols": 100}
    return tqdm(total=len(study.runs), initial=done, unit="run", desc=study.name,
                disable=not enabled, **{"file": sys.stderr, "mininterval": 0.5, **options})


@dataclasses.dataclass
class _Plan:
    """How a backend runs batches: its workers (joblib's n_jobs for Dask; loky worker processes),
    torch threads per batch, plugin sources to ship with each task, whether each task also carries
    its batch's data files (``ships_data``), the errors that mean the workers were lost (said as
    ``what``/``hint``), and for loky (``local`` not None) whether this process steps batches too
    (:func:`_local`)."""

    n_jobs: int
    threads: int | None
    sources: dict[str, str] | None
    lost: tuple[type[BaseException], ...]
    what: str
    hint: str = ""
    local: bool | None = None
    ships_data: bool = False


def _data_files(batch: list[Run]) -> dict[str, bytes] | None:
    """The contents of the data files ``batch``'s runs name (:func:`gamedyn.data.files`), keyed by
    the paths their configurations hold, for a worker that may not see them (None: no file). A file
    unreadable here is left out: the worker's load then fails that batch, as a local run would."""
    out = {}
    for path in data.files([r.config["game"] for r in batch]):
        with contextlib.suppress(OSError):
            out[path] = Path(path).read_bytes()
    return out or None


def _local(todo: list[list[Run]], run: Any, remote: Any, workers: int, here: bool
           ) -> Iterator[BatchResult | BatchFailure | BatchWritten]:
    """The batches' results as they finish, on ``workers`` loky processes (:mod:`gamedyn.pool`,
    the longest batches first, each ``remote(batch)``: written there) and, with ``here``, in this
    process too (``run(batch)``): it steps the shortest ones while the workers start and step the
    rest, taking none before they have finished importing (a small study may be over by then). Each
    batch's numbers are the same wherever it runs."""
    queue = collections.deque(todo)
    pending: set[Future] = set()
    ex = None
    if workers > 0:
        pool.prestart(workers)
        ex = pool.executor(workers)
    while queue or pending:
        for f in [f for f in pending if f.done()]:
            pending.discard(f)
            yield f.result()
        ahead = workers if here else 2 * workers  # beside this process, no batch waits in a queue
        while ex is not None and queue and len(pending) < ahead and (not here or pool.ready()):
            pending.add(ex.submit(remote, queue.popleft()))
        if here and queue:  # alone: the longest first; beside workers: the shortest
            yield run(queue.pop() if ex is not None else queue.popleft())
        elif pending:
            wait(pending, return_when=FIRST_COMPLETED)


@contextlib.contextmanager
def _backend(backend: str, scheduler: Any, jobs: int, plugins: tuple[str, ...],
             todo: list[list[Run]]) -> Iterator[_Plan]:
    """How a backend runs the batches (loky: :func:`_local`, this process stepping too for a study
    too small for a pool, :func:`in_process`). Dask workers may not see this machine's files, so the
    study's plugin files, and each batch's data files, travel with the tasks (plugins named as
    modules must be installed there)."""
    if backend == "loky":
        here = in_process(todo, jobs)  # then with the cores' other workers, if batches are left
        workers = pool.workers_for(jobs)
        if here:
            workers = 0 if len(todo) == 1 else pool.cores_for(jobs) - 1
        yield _Plan(workers, 1 if jobs != 1 else None, None,
                    (BrokenProcessPool,), "a worker process died",
                    " (with fewer --jobs or a smaller --memory-budget if memory ran out)", here)
        return
    sources = {spec: Path(spec).read_text() for spec in plugins if spec.endswith(".py")}
    with _dask_client(scheduler) as client, parallel_config(backend="dask", client=client):
        from distributed import KilledWorker

        yield _Plan(-1, 1, sources or None, (KilledWorker, OSError),
                    f"lost the Dask cluster at {client.scheduler.address}", ships_data=True)


@contextlib.contextmanager
def _dask_client(scheduler: Any) -> Iterator[Any]:
    """A connected ``distributed.Client`` with at least one worker, or a StudyError saying why not."""
    try:
        import distributed
    except ImportError:
        raise StudyError("--backend", "dask needs the `distributed` package, which is not "
                                      "installed: pip install 'gamedyn[dask]' (or "
                                      "pip install 'dask[distributed]')") from None
    if isinstance(scheduler, distributed.Client):
        _wait_for_workers(scheduler, scheduler.scheduler.address)
        yield scheduler
        return
    if not scheduler:
        raise StudyError("--scheduler", "--backend dask needs the address of a Dask scheduler, "
                                        "e.g. --scheduler tcp://HOST:8786")
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise StudyError("--scheduler", (
            f"cannot reach the Dask scheduler at {scheduler} ({type(e).__name__}: "
            f"{_first_line(str(e))}); start one with `dask scheduler` and workers with "
            f"`dask worker {scheduler}`, or check the address")) from None
    try:
        _wait_for_workers(client, scheduler)
        yield client
    finally:
        client.close()


def _wait_for_workers(client: Any, address: str) -> None:
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        raise StudyError("--scheduler", (
            f"the Dask scheduler at {address} has no workers (waited {CONNECT_TIMEOUT:g} s); "
            f"start some with `dask worker {address}`")) from None
