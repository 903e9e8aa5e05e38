"""Throughput of toy-game studies: gamedyn's batched stepping against a hand-written per-run loop.

Everything is measured side by side in one invocation and reported as ratios (machines are noisy):

- ``hand loop``: what researchers write — one run at a time, ``torch.optim.SGD``, autograd, on
  bilinear x·y; measured on a subsample of runs and steps and scaled (stated in the output);
- ``gamedyn eager``: ``run_batch`` over R runs at once (the run axis), with recording every
  ``record_every`` steps, and without recording (``record_every = steps``) to price the recorder;
- ``gamedyn run`` end to end: the CLI on a study of R runs (start-up, stepping, diagnosis, Parquet).

Usage: ``python benchmarks/bench_toy.py [--runs 1000] [--steps 10000] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamedyn.batch import run_batch  # noqa: E402
from gamedyn.study import make_study  # noqa: E402


def hand_loop(n_runs: int, steps: int, lr: float = 1e-3) -> float:
    """Run-steps per second of a plain per-run PyTorch loop (simultaneous SGD on x·y)."""
    start = time.perf_counter()
    for seed in range(n_runs):
        torch.manual_seed(seed)
        x = torch.randn(1, dtype=torch.float64, requires_grad=True)
        y = torch.randn(1, dtype=torch.float64, requires_grad=True)
        opt_x, opt_y = torch.optim.SGD([x], lr=lr), torch.optim.SGD([y], lr=lr)
        for _ in range(steps):
            opt_x.zero_grad()
            opt_y.zero_grad()
            v = (x * y).sum()
            gx, gy = torch.autograd.grad(v, [x, y])
            x.grad, y.grad = gx, -gy   # gen descends v, disc ascends it
            opt_x.step()
            opt_y.step()
    return n_runs * steps / (time.perf_counter() - start)


def spec(n_runs: int, steps: int, record_every: int) -> dict:
    return {"name": "bench_toy", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 1e-3}, "init": {"dist": "normal", "scale": 1.0},
            "seeds": n_runs, "steps": steps, "record_every": record_every, "max_batch": n_runs}


def batched(n_runs: int, steps: int, record_every: int) -> float:
    """Run-steps per second of one gamedyn batch (stepping, recording, diagnosis)."""
    study = make_study(spec(n_runs, steps, record_every))
    (batch,) = study.batches()
    start = time.perf_counter()
    run_batch(batch, study.thresholds)
    return n_runs * steps / (time.perf_counter() - start)


def end_to_end(n_runs: int, steps: int, record_every: int, jobs: int) -> float:
    """Seconds for ``gamedyn run`` of the study, from process start to Parquet written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_toy.yaml"
        path.write_text(yaml.safe_dump({**spec(n_runs, steps, record_every),
                                        "max_batch": max(1, n_runs // jobs)}))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gamedyn.cli", "run", str(path), "--out", tmp,
                        "-j", str(jobs), "--quiet", "--no-figures"], check=True, cwd=ROOT)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--record-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hand-runs", type=int, default=4, help="subsample for the hand loop")
    ap.add_argument("--hand-steps", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    hand = hand_loop(args.hand_runs, args.hand_steps)
    eager = batched(args.runs, args.steps, args.record_every)
    bare = batched(args.runs, args.steps, args.steps)
    e2e = end_to_end(args.runs, args.steps, args.record_every, jobs=args.threads)
    n = args.runs * args.steps
    print(f"bilinear x·y, simultaneous SGD, R = {args.runs} runs × {args.steps} steps, "
          f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'path':34s} {'run-steps/s':>12s} {'× hand loop':>12s}")
    print(f"{'hand loop (subsample, scaled)':34s} {hand:12.3g} {1:12.1f}   "
          f"[{args.hand_runs} runs × {args.hand_steps} steps measured]")
    label = f"gamedyn eager, record every {args.record_every}"
    print(f"{label:34s} {eager:12.3g} {eager / hand:12.0f}")
    print(f"{'gamedyn eager, no recording':34s} {bare:12.3g} {bare / hand:12.0f}")
    print(f"recording every {args.record_every} steps costs {100 * (bare / eager - 1):.0f}% "
          f"over not recording")
    print(f"gamedyn run end to end (-j {args.threads}): {e2e:.1f} s = {n / e2e:.3g} run-steps/s "
          f"({n / e2e / hand:.0f}× the hand loop)")


if __name__ == "__main__":
    main()
