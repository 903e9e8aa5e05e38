"""The ``gamedyn`` command: ``run``, ``list``, ``report``."""

from __future__ import annotations

import argparse
import sys
import time

from .errors import StudyError


def _catalogue() -> str:
    from .games import GAMES
    from .optim import OPTIMIZERS
    from .regularizers import REGULARIZERS
    from .rules import RULES

    parts = []
    for title, registry in (("games", GAMES), ("rules", RULES), ("optimizers", OPTIMIZERS),
                            ("regularizers", REGULARIZERS)):
        parts.append(f"{title}:")
        parts += [cls.describe() for cls in registry]
        parts.append("")
    return "\n".join(parts)


def _run(args: argparse.Namespace) -> int:
    from .orchestrate import run_study
    from .report import summary, write_report
    from .study import load_study

    if args.jobs == 0 or args.jobs < -1:
        raise StudyError("--jobs", f"{args.jobs} is not accepted: expected a number of workers >= 1,"
                                   f" or -1 for one per core")
    study = load_study(args.study)
    start = time.perf_counter()
    results = run_study(study, out=args.out, jobs=args.jobs, fresh=args.fresh,
                        progress=not args.quiet)
    figures = [] if args.no_figures else write_report(results)
    if not args.quiet:
        print(summary(results).to_string())
        print(f"{len(results.runs)} runs in {time.perf_counter() - start:.1f} s -> {results.path}")
        for f in figures:
            print(f"figure: {f}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import summary, write_report
    from .results import load

    results = load(args.results)
    print(summary(results).to_string())
    for f in write_report(results):
        print(f"figure: {f}")
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
    run.add_argument("--no-figures", action="store_true", help="do not draw the figures")
    run.set_defaults(func=_run)
    ls = sub.add_parser("list", help="the games, rules and optimizers, with parameters and defaults")
    ls.set_defaults(func=lambda a: print(_catalogue()) or 0)
    rep = sub.add_parser("report", help="summarise a results folder and draw its figures")
    rep.add_argument("results", help="a results folder, e.g. results/quickstart")
    rep.set_defaults(func=_report)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StudyError as e:
        print(f"gamedyn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamedyn: interrupted; finished batches are saved, run again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
