"""The ``gamedyn`` command: ``run``, ``list``, ``report``.

Exit status: 0 done; 1 some runs failed (their tracebacks are in ``failures.parquet``; running
again retries them); 2 bad input or a refused folder (one line naming what and what to do);
130 interrupted (finished batches are kept).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import pool
from .errors import StudyError

if TYPE_CHECKING:
    from .results import Results

#: Set by :func:`entry`: the cyclic garbage collector is paused until the command's imports are done.
_gc_paused = False


def _imported() -> None:
    """After a command's imports (torch, pandas, gamedyn's modules): resume the cyclic garbage
    collector that :func:`entry` paused, with what exists now frozen out of its generations
    (``gc.freeze``). Importing creates ~300,000 long-lived objects and no garbage, yet triggers
    collections that traverse all of them: 0.2-0.3 s of the ~1.7 s a process spends importing
    torch and gamedyn here; frozen, later collections (matplotlib's import, the batches) skip them."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def _catalogue() -> str:
    from .games import GAMES
    from .optim import OPTIMIZERS
    from .regularizers import REGULARIZERS
    from .rules import RULES

    _imported()

    parts = []
    for title, registry in (("games", GAMES), ("rules", RULES), ("optimizers", OPTIMIZERS),
                            ("regularizers", REGULARIZERS)):
        parts.append(f"{title}:")
        parts += [cls.describe() for cls in registry]
        parts.append("")
    return "\n".join(parts)


def _run(args: argparse.Namespace) -> int:
    if args.jobs == 0 or args.jobs < -1:
        raise StudyError("--jobs", f"{args.jobs} is not accepted: expected a number of workers >= 1,"
                                   f" or -1 for one per core")
    if args.backend == "loky" and args.jobs != 1:  # workers boot on the other cores meanwhile
        pool.prestart(pool.cores_for(args.jobs) - 1)

    from .orchestrate import run_study
    from .report import write_report
    from .results import failures_note
    from .study import load_study

    _imported()

    if args.scheduler and args.backend != "dask":
        raise StudyError("--scheduler", "is for the dask backend: add --backend dask")
    start = time.perf_counter()
    study = load_study(args.study)
    results = run_study(study, out=args.out, jobs=args.jobs, fresh=args.fresh,
                        progress=not args.quiet, backend=args.backend, scheduler=args.scheduler,
                        compile=args.compile, device=args.device,
                        memory_budget=args.memory_budget)
    pool.stop()
    figures = [] if args.no_figures else write_report(results)
    if not args.quiet:
        _summary(results, figures, time.perf_counter() - start)
    if len(results.failures):
        print(f"gamedyn: error: {failures_note(results.path, results.failures, len(results.runs))}",
              file=sys.stderr)
        return 1
    return 0


def _summary(results: Results, figures: list[Path], elapsed: float) -> None:
    """Outcomes per game and rule, counts, time, where the results are, expectations."""
    from .report import expectation_note, summary

    info = results.info
    print(summary(results).to_string())
    n_failed = len(results.failures)
    print(f"{info.get('runs', len(results.runs))} runs: {info.get('computed', 0)} computed, "
          f"{info.get('on_disk', 0)} already on disk, {n_failed} failed; {elapsed:.1f} s"
          + (f" ({info['backend']})" if info.get("backend", "loky") != "loky" else ""))
    print(f"results: {results.path} (runs.parquet, trajectories.parquet"
          + (", failures.parquet" if n_failed else "") + f"; gamedyn.load('{results.path}'))")
    for f in figures:
        print(f"figure: {f}")
    note = expectation_note(results)
    if note:
        print(note)


def _report(args: argparse.Namespace) -> int:
    from .report import basin_fractions, expectation_note, seed_aggregates, summary, write_report
    from .report_html import write_html
    from .results import failures_note, load

    _imported()
    results = load(args.results, warn=False)
    print(summary(results).to_string())
    print("\nper configuration, over seeds (outcome frequency [Wilson 95% interval]):")
    aggregate = results.aggregate()
    print(seed_aggregates(results, aggregate))
    basins = basin_fractions(results)
    if basins is not None:
        print("\nbasin fractions (each attractor's share of each configuration's starts):")
        print(basins.to_string(index=False))
    for f in write_report(results):
        print(f"figure: {f}")
    print(f"report: {write_html(results, aggregate)}")
    note = expectation_note(results)
    if note:
        print(note)
    if len(results.failures):
        print(f"gamedyn: note: {failures_note(results.path, results.failures, len(results.runs))}",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gamedyn", description=(
        "Convergence studies of gradient-based training in non-convex games."))
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a study file (resumable)")
    run.add_argument("study", help="the study file (YAML)")
    run.add_argument("-j", "--jobs", type=int, default=1, help="parallel workers (-1: all cores)")
    run.add_argument("--out", default="results", help="results root (default: results)")
    run.add_argument("--fresh", action="store_true",
                     help="replace existing results of a changed study of the same name")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument("--backend", choices=("loky", "dask"), default="loky",
                     help="where batches run: loky (local processes, -j) or dask (a Dask "
                          "distributed cluster, --scheduler)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="the Dask scheduler, e.g. tcp://HOST:8786 (with --backend dask)")
    run.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    run.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                     help="fuse chunks of steps with torch.compile: auto (where it pays and the "
                          "game and rule trace), on (wherever they trace), off (eager)")
    run.add_argument("--device", default="cpu", help="where batches run: cpu (default) or cuda")
    run.add_argument("--memory-budget", metavar="MIB",
                     help="the most memory one batch (one worker) may use, in MiB or as 512MiB, "
                          "2GiB; overrides the study's memory_budget (default 2048): batches hold "
                          "fewer runs where they would not fit")
    run.set_defaults(func=_run)
    ls = sub.add_parser("list", help="the games, rules and optimizers, with parameters and defaults")
    ls.set_defaults(func=lambda a: print(_catalogue()) or 0)
    rep = sub.add_parser("report", help="summarise a results folder, draw its figures and write "
                                       "report.html")
    rep.add_argument("results", help="a results folder, e.g. results/quickstart")
    rep.set_defaults(func=_report)
    args = parser.parse_args(argv)
    from .results import AllRunsFailed

    try:
        return args.func(args)
    except AllRunsFailed as e:
        print(f"gamedyn: error: {e}", file=sys.stderr)
        return 1
    except StudyError as e:
        print(f"gamedyn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamedyn: interrupted; finished batches are saved, run again to resume",
              file=sys.stderr)
        return 130


def entry() -> None:
    """The ``gamedyn`` command (console script, ``python -m gamedyn``): :func:`main`, then exit at
    once. Everything the command wrote is closed and flushed by then, and the exit handlers run
    (multiprocessing's finalizers among them); only the teardown of the interpreter's 2,000 modules
    (torch, pandas, matplotlib) is skipped, which would add 0.7 s to every command. The cyclic
    garbage collector is paused while the command imports (:func:`_imported`)."""
    global _gc_paused
    gc.disable()
    _gc_paused = True
    try:
        rc = main()
    finally:
        pool.stop()  # no worker outlives the command (they hold its output pipes)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(rc)


if __name__ == "__main__":
    entry()
