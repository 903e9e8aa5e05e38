"""Throughput of toy-game studies: gamedyn's batched stepping, eager and compiled, against a
hand-written per-run loop.

Everything is measured side by side in one invocation and reported as ratios (machines are noisy):

- ``hand loop``: what researchers write — one run at a time, ``torch.optim.SGD``, autograd, on
  bilinear x·y; measured on a subsample of runs and steps and scaled (stated in the output);
- ``gamedyn eager``: ``run_batch`` over R runs at once (the run axis), ``--compile off``, with
  recording every ``record_every`` steps, and without recording (``record_every = steps``);
- ``gamedyn compiled``: the same with ``--compile on`` (:mod:`gamedyn.fuse`); its stepping rate
  excludes the compilation, which is reported on its own (warm: Inductor's on-disk cache may
  already hold it; ``--cold`` points the cache at an empty folder first);
- the memory floor of recording: the records alone (the recorder's T × V × R float64 array, V = 7
  variables for bilinear) written block by block into fresh memory, as the recorder stores them,
  against the compiled loop without recording: whatever the stepping, recording cannot cost less;
- recording near its floor, for each choice of the study key ``record:`` (``--records``; default:
  every variable, ``[params, losses]``, ``[params]``): the compiled loop's extra time for recording
  every ``record_every`` steps against the memory floor of that choice's V variables, the ratio
  issue 13 asks to be ≤ 1.5;
- ``gamedyn run`` end to end: the CLI on a study of R runs (start-up, stepping, diagnosis, Parquet),
  with ``--compile auto`` (the default) and ``--compile on``.

Each figure is the best of ``--repeat`` rounds, interleaved (the machines here are noisy); the
compile time is the first round's (the later rounds load the compiled graph from the cache).

Usage: ``python benchmarks/bench_toy.py [--runs 1000] [--steps 10000] [--threads 2] [--repeat 3] [--cold]
[--records all params,losses params] [--records-only]``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamedyn.batch import run_batch  # noqa: E402
from gamedyn.study import make_study  # noqa: E402


def hand_loop(n_runs: int, steps: int, lr: float = 1e-3) -> float:
    """Run-steps per second of a plain per-run PyTorch loop (simultaneous SGD on x·y: the
    generator x descends x·y, the discriminator y ascends it)."""
    start = time.perf_counter()
    for seed in range(n_runs):
        torch.manual_seed(seed)
        x = torch.randn(1, dtype=torch.float64, requires_grad=True)
        y = torch.randn(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([x, y], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            (x * y).sum().backward()
            y.grad.neg_()
            opt.step()
    return n_runs * steps / (time.perf_counter() - start)


def spec(n_runs: int, steps: int, record_every: int, record: list[str] | None = None) -> dict:
    return {"name": "bench_toy", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 1e-3}, "init": {"dist": "normal", "scale": 1.0},
            "seeds": n_runs, "steps": steps, "record_every": record_every, "max_batch": n_runs,
            **({"record": record} if record else {})}


def batched(n_runs: int, steps: int, record_every: int, compile: str,
            record: list[str] | None = None) -> tuple[float, float]:
    """(run-steps per second of one gamedyn batch's stepping loop, compile seconds): the loop's
    time without its compilation, recording and the end-of-run checks included."""
    study = make_study(spec(n_runs, steps, record_every, record))
    (batch,) = study.batches()
    runs = run_batch(batch, study.thresholds, compile=compile).runs
    assert (runs["stepping"] == ("eager" if compile == "off" else "compiled")).all(), \
        runs["stepping_note"].iloc[0]
    loop = runs["wall_time"].iloc[0] * n_runs - runs["compile_time"].iloc[0]
    return n_runs * steps / loop, float(runs["compile_time"].iloc[0])


def recorded_variables(record: list[str] | None) -> int:
    """V, the variables a bilinear run records under this ``record:`` choice (from a 1-step batch)."""
    study = make_study(spec(32, 1, 1, record))
    (batch,) = study.batches()
    return run_batch(batch, study.thresholds, compile="off").trajectories["variable"].nunique()


def fresh_heap() -> None:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing),
    so that the next large array is fresh memory, as in a worker's first batch: glibc keeps up to
    64 MB freed at the top of its heap and serves a large allocation from there when it fits, which
    let a 10,000-step loop's records (41 MB) land in memory written before while the 20,000-step
    loop's (82 MB) did not, and so doubled their difference."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig``: not before each loop)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def record_costs(R: int, S: int, every: int, choices: list[list[str] | None], repeat: int
                 ) -> dict[str, tuple[float, float, float]]:
    """For each ``record:`` choice: the compiled loop's extra seconds for recording every ``every``
    steps in the steady state, against the memory floor of its V variables (the same difference:
    the records of 2S steps into fresh memory less those of S steps, each the best of the rounds,
    the heap's free memory given back before each, :func:`fresh_heap`); printed, and returned as
    {choice: (extra, floor, first)}.

    A process's batches after its first write their records into the memory the one before left
    (:func:`gamedyn.record.values_array`): ``extra`` is theirs (each loop a batch of one process,
    after the first), ``first`` the same with that memory dropped and the heap's free memory given
    back before each batch, as the first batch of a worker meets it (fresh memory, as the floor).

    The steady state: the loop of 2S steps less that of S steps (one-off costs cancel: tracing, the
    first chunk's call, allocating the recorder), less the same without recording. Each loop is the
    best of ``repeat`` interleaved rounds, after one dropped (compilation's imports, first calls): on
    a shared machine noise only adds, and a difference of medians came out noisier than its
    signal (± 10 ms). The process's imports are frozen out of the garbage collector's generations
    first, as ``gamedyn run`` and its workers do (``gamedyn/cli.py``, ``gamedyn/pool.py``), so that
    the loops meet the collector as a user's batch does."""
    from gamedyn import record
    from gamedyn.runaxis import padded_size

    gc.freeze()  # the imports out of the collector's way, as in `gamedyn run` and its workers

    variables = [recorded_variables(c) for c in choices]
    left: dict[tuple[int, int], np.ndarray] = {}  # by records and variables

    def loop(steps: int, record_every: int, choice: list[str] | None, fresh: bool) -> float:
        """The loop's seconds, in a worker's first batch (``fresh``) or in one after a batch of the
        same shape (which left memory written before: the size of the records a choice keeps and
        one more variable, as the recorder also writes the distance, which a choice may not keep)."""
        kept = variables[choices.index(choice)] if choice in choices else 7  # (no recording: any)
        T, V = steps // record_every + 1, kept + 1
        if (T, V) not in left:  # (the recorder's run axis is padded: runaxis)
            left[T, V] = np.ones(T * V * padded_size(R))
        record._spare[:] = [] if fresh else [left[T, V]]
        if fresh:
            fresh_heap()
        return R * steps / batched(R, steps, record_every, "on", choice)[0]

    configs = ([(S, None, False)] + [(every, c, False) for c in choices]    # the first: no recording
               + [(every, c, True) for c in choices])
    best: dict[tuple[int, int], float] = {}
    floors: dict[tuple[int, int], float] = {}
    for r in range(repeat + 1):
        for i, (record_every, choice, fresh) in enumerate(configs):
            for steps in (S, 2 * S):
                t = loop(steps, record_every, choice, fresh)
                if r:
                    best[i, steps] = min(best.get((i, steps), float("inf")), t)
        for i, V in enumerate(variables):
            if r:
                for steps in (S, 2 * S):
                    fresh_heap()
                    floors[i, steps] = min(floors.get((i, steps), float("inf")),
                                           memory_floor(R, steps, every, V)[0])

    def marginal(i: int) -> float:
        return best[i, 2 * S] - best[i, S]

    def floor(i: int) -> float:  # the same difference: memory behaves alike at the same sizes
        return floors[i, 2 * S] - floors[i, S]

    print(f"recording every {every} steps, compiled, R = {R} × {S} steps: the loop's extra time for "
          f"recording (steady state: 2S steps' loop less S steps', less the same without recording, "
          f"{1e3 * marginal(0):.1f} ms), against the memory floor (the records alone into fresh "
          f"memory); each loop the best of {repeat} interleaved rounds; 'first batch': the same "
          f"with the memory an earlier batch left dropped and the heap's free memory given back, as in "
          f"a worker's first batch")
    print(f"{'record:':28s} {'V':>3s} {'extra (ms)':>11s} {'floor (ms)':>11s} {'× floor':>8s} "
          f"{'first batch (ms)':>17s} {'× floor':>8s}")
    out = {}
    n = len(choices)
    for i, (choice, V) in enumerate(zip(choices, variables)):
        name = "(default: all)" if choice is None else "[" + ", ".join(choice) + "]"
        extra = marginal(i + 1) - marginal(0)
        first = marginal(i + 1 + n) - marginal(0)
        out[name] = (extra, floor(i), first)
        print(f"{name:28s} {V:3d} {1e3 * extra:11.1f} {1e3 * floor(i):11.1f} {extra / floor(i):8.2f} "
              f"{1e3 * first:17.1f} {first / floor(i):8.2f}")
    return out


def memory_floor(n_runs: int, steps: int, record_every: int, variables: int = 7,
                 per_block: int = 2) -> tuple[float, float]:
    """(seconds, MB) to write a batch's records into a freshly allocated [T, V, R] float64 array,
    ``per_block`` records at a time (a compiled chunk's worth), from a block already in cache."""
    T = steps // record_every + 1
    block = np.random.default_rng(0).random((per_block, variables, n_runs))
    start = time.perf_counter()
    values = np.empty((T, variables, n_runs))
    for i in range(0, T - per_block + 1, per_block):
        values[i:i + per_block] = block
    return time.perf_counter() - start, values.nbytes / 1e6


def end_to_end(n_runs: int, steps: int, record_every: int, jobs: int, compile: str) -> float:
    """Seconds for ``gamedyn run`` of the study, from process start to Parquet written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_toy.yaml"
        path.write_text(yaml.safe_dump({**spec(n_runs, steps, record_every),
                                        "max_batch": max(1, n_runs // jobs)}))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gamedyn.cli", "run", str(path), "--out", tmp,
                        "-j", str(jobs), "--quiet", "--no-figures", "--compile", compile],
                       check=True, cwd=ROOT)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--record-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hand-runs", type=int, default=4, help="subsample for the hand loop")
    ap.add_argument("--hand-steps", type=int, default=2000)
    ap.add_argument("--cold", action="store_true", help="compile into an empty Inductor cache")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept")
    ap.add_argument("--records", nargs="+", default=["all", "params,losses", "params"],
                    help="record: choices to price against their floor (comma-separated groups)")
    ap.add_argument("--records-only", action="store_true", help="only the record: choices' rows")
    args = ap.parse_args()
    gc.freeze()  # the imports out of the collector's way, as in `gamedyn run` and its workers
    torch.set_num_threads(args.threads)
    if args.cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="gamedyn-bench-inductor-")
    R, S, every = args.runs, args.steps, args.record_every
    choices = [None if c == "all" else c.split(",") for c in args.records]
    if args.records_only:
        record_costs(R, S, every, choices, args.repeat)
        return

    hand = hand_loop(args.hand_runs, args.hand_steps)
    rates: dict[tuple[str, int], tuple[float, float]] = {}
    floor = float("inf")
    for _ in range(args.repeat):  # rounds interleaved, the best of each kept: the machine is noisy
        for compile in ("off", "on"):
            for rec in (every, S):
                rate, comp = batched(R, S, rec, compile)
                best = rates.get((compile, rec), (0.0, comp))
                rates[compile, rec] = (max(rate, best[0]), best[1])  # the first round's compile
        seconds, megabytes = memory_floor(R, S, every)
        floor = min(floor, seconds)
    e2e = {c: min(end_to_end(R, S, every, 1, c) for _ in range(args.repeat)) for c in ("auto", "on")}
    hand = max(hand, hand_loop(args.hand_runs, args.hand_steps))
    print(f"bilinear x·y, simultaneous SGD, R = {R} runs × {S} steps, torch {torch.__version__}, "
          f"{args.threads} threads, {os.cpu_count()} cores, best of {args.repeat} interleaved rounds")
    print(f"{'path':40s} {'run-steps/s':>12s} {'× hand loop':>12s} {'× eager':>8s}  compile")
    print(f"{'hand loop (subsample, scaled)':40s} {hand:12.3g} {1:12.1f}   "
          f"[{args.hand_runs} runs × {args.hand_steps} steps, best of two]")
    for (compile, rec), (rate, comp) in rates.items():
        name = (f"gamedyn {'eager' if compile == 'off' else 'compiled'}, "
                + (f"record every {rec}" if rec < S else "no recording"))
        eager = rates["off", rec][0]
        extra = f"{comp:6.1f} s" if compile == "on" else ""
        print(f"{name:40s} {rate:12.3g} {rate / hand:12.0f} {rate / eager:8.1f}  {extra}")
    for compile in ("off", "on"):
        cost = rates[compile, S][0] / rates[compile, every][0] - 1
        print(f"recording every {every} steps costs {100 * cost:.0f}% over not recording "
              f"({'eager' if compile == 'off' else 'compiled'})")
    loop = R * S / rates["on", S][0]
    print(f"memory floor: writing the {megabytes:.3g} MB of records into fresh "
          f"memory takes {1e3 * floor:.1f} ms = {100 * floor / loop:.0f}% of the compiled loop without "
          f"recording ({1e3 * loop:.1f} ms)")
    record_costs(R, S, every, choices, args.repeat)
    for compile, sec in e2e.items():
        print(f"gamedyn run end to end (-j 1, --compile {compile}): {sec:.1f} s = "
              f"{R * S / sec:.3g} run-steps/s ({R * S / sec / hand:.0f}× the hand loop)")


if __name__ == "__main__":
    main()
