"""What the throughput benchmarks of neural players share (``bench_mog.py``, ``bench_digits.py``):
best-of timing, a matmul peak measured in the same run, paths interleaved in chunks of steps (so
that every path sees the same load on a shared, noisy machine), and gamedyn's own ``run_batch``
run in a thread that pauses every chunk of steps, so that it can be interleaved with the others.

A path is a generator function ``(n_runs, steps, chunk) -> Progress`` that does its work in chunks
and yields, after each, the fraction of its work done (1.0 last).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gamedyn.batch import run_batch  # noqa: E402
from gamedyn.component import Param  # noqa: E402
from gamedyn.rules import RULES  # noqa: E402
from gamedyn.rules.simultaneous import Simultaneous  # noqa: E402

Progress = Iterator[float]   # yields the fraction of the path's work done, after each chunk
PathFn = Callable[[int, int, int], Progress]


def synchronize(device: str = "cpu") -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that a clock reading covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int = 5, device: str = "cpu") -> float:
    """Best seconds of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(runs: int, rows: int, inner: int, out: int, device: str = "cpu"
                  ) -> tuple[float, float]:
    """Best GFLOP/s of a 2048² float32 matmul, and of a bmm of the workload's shape: ``runs`` ×
    [rows, inner] @ [inner, out] (a layer of the runs stacked)."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    big = 2 * 2048**3 / timed(lambda: a @ b, 5, device) / 1e9
    x, w = torch.randn(runs, rows, inner, device=device), torch.randn(runs, inner, out, device=device)
    small = 2 * runs * rows * inner * out / timed(lambda: torch.bmm(x, w), 50, device) / 1e9
    return big, small


# --- gamedyn's run_batch, paced ----------------------------------------------------------------

_PAUSE = threading.local()   # each gamedyn path's thread has its own pause


@RULES.register("bench_simultaneous")
class _PacedSimultaneous(Simultaneous):
    """``simultaneous``, handing control back to the benchmark's driver every ``chunk`` steps."""

    params = {"chunk": Param(int, 100, "steps between pauses", low=1)}

    def step(self, ctx, params, state):
        params, state = super().step(ctx, params, state)
        n = state.get("bench_steps", 0) + 1
        if n % self.chunk == 0:
            _PAUSE.fn()
        return params, {**state, "bench_steps": n}


def paced_batch(batch: list[Any], thresholds: dict[str, float], steps: int, chunk: int,
                **run_batch_kwargs: Any) -> Progress:
    """``run_batch(batch, thresholds, **run_batch_kwargs)`` itself (untouched), run in a thread that
    pauses every ``chunk`` steps (the batch's rule must be ``bench_simultaneous`` with that
    ``chunk``), so that it can be interleaved with the other paths. Its set-up counts in its first
    chunk, its diagnosis in its last."""
    go, back = threading.Semaphore(0), threading.Semaphore(0)
    done = {"steps": 0, "finished": False}
    device = run_batch_kwargs.get("device", "cpu")

    def pause() -> None:
        synchronize(device)
        done["steps"] += chunk
        back.release()
        go.acquire()

    def target() -> None:
        go.acquire()
        _PAUSE.fn = pause
        try:
            run_batch(batch, thresholds, **run_batch_kwargs)
        finally:
            done["finished"] = True
            back.release()

    threading.Thread(target=target, daemon=True).start()
    while True:
        go.release()
        back.acquire()
        if done["finished"]:
            yield 1.0
            return
        yield min(done["steps"] / steps, 1.0 - 1e-9)  # the last chunk includes the diagnosis


# --- measurement ---------------------------------------------------------------------------------

def interleaved(paths: dict[str, PathFn], n_runs: int, steps: int, chunk: int) -> dict[str, float]:
    """Each path's total seconds, advancing whichever unfinished path has done the least."""
    gens = {name: fn(n_runs, steps, chunk) for name, fn in paths.items()}
    progress = dict.fromkeys(paths, 0.0)
    seconds = dict.fromkeys(paths, 0.0)
    while gens:
        name = min(gens, key=progress.__getitem__)
        t0 = time.perf_counter()
        try:
            progress[name] = next(gens[name])
        except StopIteration:
            progress[name] = 1.0
        seconds[name] += time.perf_counter() - t0
        if progress[name] >= 1.0:
            del gens[name]
    return seconds


def own_threads(path: PathFn, threads: int | None = None) -> PathFn:
    """``path`` with its own torch intra-op thread setting (``threads``, or the setting it starts
    with): restored whenever it resumes, put back whenever it yields. (The setting is global to the
    process, and gamedyn's ``run_batch`` sets the number it steps on for as long as it runs, paused
    or not: without this, the paths interleaved with it would run on its setting.)"""
    def run(n_runs: int, steps: int, chunk: int) -> Progress:
        gen = path(n_runs, steps, chunk)
        mine = threads or torch.get_num_threads()
        while True:
            outer = torch.get_num_threads()
            torch.set_num_threads(mine)
            try:
                progress = next(gen)
            except StopIteration:
                return
            finally:
                mine = torch.get_num_threads()
                torch.set_num_threads(outer)
            yield progress
    return run
