"""Speed as a user feels it: whole commands in fresh processes, against what a researcher would
write by hand, side by side in one invocation (ratios: machines here are noisy).

- ``quickstart``: ``gamedyn run studies/quickstart.yaml -j 2`` (figures on, a fresh process, an
  empty Inductor cache and results folder) against a naive per-run script of the same 27 runs
  (torch scalars, ``torch.optim.SGD``, a record of every step, one Parquet file at the end), each
  timed as a whole process;
- ``eager overhead``: a step of one Dirac-GAN batch (R runs, simultaneous SGD, a record every
  step) through ``run_batch(..., compile="off")`` (the difference between 2S and S steps, so that
  the batch's fixed costs cancel; with the tidy tables it builds, and its stepping loop alone)
  against a hand-batched eager loop over the same [R] tensors with ``torch.optim.SGD`` and the same
  recorded values kept in a tensor, in this process;
- ``start-up``: ``gamedyn list`` against ``python -c "import torch"``.

Each figure is the best of ``--repeat`` interleaved rounds. Usage:
``python benchmarks/bench_end_to_end.py [--repeat 3] [--runs 1000] [--steps 300]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

#: The quickstart's runs written as researchers write them: one run at a time, scalars, torch.optim.
NAIVE_QUICKSTART = textwrap.dedent('''
    import sys, torch, pandas as pd
    torch.set_num_threads(1)
    F = torch.nn.functional

    def losses(game, x, y):
        if game == "bilinear":
            return x * y, -(x * y)
        t = y * x                                      # Dirac-GAN: D(x) = psi x, data at 0
        v = -F.softplus(-t) if game == "gan" else t    # f(psi theta) (+ f(0): no gradient)
        return v, -v

    rows = []
    for game in ("bilinear", "gan", "wgan"):
        for rule, disc_steps in (("simultaneous", 1), ("alternating", 1), ("alternating", 5)):
            for lr in (0.05, 0.1, 0.2):
                x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
                y = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
                ox, oy = torch.optim.SGD([x], lr=lr), torch.optim.SGD([y], lr=lr)
                for step in range(1501):
                    lg, ld = losses(game, x, y)
                    gx, = torch.autograd.grad(lg, x, retain_graph=True)
                    gy, = torch.autograd.grad(ld, y)
                    rows.append((game, rule, disc_steps, lr, step, x.item(), y.item(), lg.item(),
                                 ld.item(), abs(gx.item()), abs(gy.item())))
                    if step == 1500:
                        break
                    if rule == "simultaneous":
                        x.grad, y.grad = gx, gy
                        ox.step(); oy.step()
                    else:                               # generator first, then the discriminator
                        x.grad = gx; ox.step()
                        for _ in range(disc_steps):
                            _, ld = losses(game, x, y)
                            y.grad, = torch.autograd.grad(ld, y); oy.step()
    pd.DataFrame(rows, columns=["game", "rule", "disc_steps", "lr", "step", "x", "y", "loss_gen",
                                "loss_disc", "grad_gen", "grad_disc"]).to_parquet(sys.argv[1])
''')


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def quickstart(tmp: Path) -> dict[str, float]:
    naive = tmp / "naive.py"
    naive.write_text(NAIVE_QUICKSTART)
    out = tmp / "results"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(dir=tmp)}
    return {"gamedyn": _timed([PY, "-m", "gamedyn", "run", "studies/quickstart.yaml", "-j", "2",
                               "--quiet", "--out", str(out)], env),
            "naive script": _timed([PY, str(naive), str(tmp / "naive.parquet")])}


def eager_overhead(runs: int, steps: int) -> dict[str, float]:
    """Seconds per step of one batch: gamedyn eager against a hand-batched loop (same tensors,
    same records: the players, losses and gradient norms, kept every step)."""
    from gamedyn import make_study
    from gamedyn.batch import run_batch

    def batch_seconds(n: int) -> tuple[float, float]:
        """(the whole batch, its stepping loop: the runs table's wall_time × runs)."""
        study = make_study({"name": "e", "game": {"name": "dirac", "loss": "gan"},
                            "rules": ["simultaneous"], "optimizer": {"name": "sgd", "lr": 0.1},
                            "init": {"dist": "normal", "scale": 0.5}, "seeds": runs, "steps": n,
                            "record_every": 1})
        (batch,) = study.batches()
        start = time.perf_counter()
        res = run_batch(batch, study.thresholds, compile="off")
        return time.perf_counter() - start, res.runs["wall_time"].sum()

    # a step's marginal cost: the batch's fixed costs (set-up, stability, diagnosis) cancel
    (whole1, loop1), (whole2, loop2) = batch_seconds(steps), batch_seconds(2 * steps)
    ours, loop = (whole2 - whole1) / steps, (loop2 - loop1) / steps

    F = torch.nn.functional
    x = (0.5 * torch.randn(runs, dtype=torch.float64)).requires_grad_()
    y = (0.5 * torch.randn(runs, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.SGD([x, y], lr=0.1)
    records = torch.empty(steps + 1, 6, runs, dtype=torch.float64)
    start = time.perf_counter()
    for step in range(steps + 1):
        v = -F.softplus(-(y * x))
        gx, = torch.autograd.grad(v.sum(), x, retain_graph=True)
        gy, = torch.autograd.grad((-v).sum(), y)
        with torch.no_grad():
            records[step] = torch.stack([x, y, v, -v, gx.abs(), gy.abs()])
        if step < steps:
            x.grad, y.grad = gx, gy
            opt.step()
    records.numpy().copy()
    hand = (time.perf_counter() - start) / steps
    return {"gamedyn eager": ours, "hand-batched": hand, "gamedyn stepping loop only": loop}


def startup() -> dict[str, float]:
    return {"gamedyn list": _timed([PY, "-m", "gamedyn", "list"]),
            "import torch": _timed([PY, "-c", "import torch"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gamedyn-e2e-") as tmp:
        for _ in range(args.repeat):
            for name, result in (("quickstart (s, whole process)", quickstart(Path(tmp))),
                                 (f"eager step, R = {args.runs} (ms)",
                                  {k: v * 1e3 for k, v in eager_overhead(args.runs, args.steps).items()}),
                                 ("start-up (s)", startup())):
                for k, v in result.items():
                    best.setdefault(name, {})[k] = min(best.get(name, {}).get(k, float("inf")), v)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; best of {args.repeat} interleaved rounds")
    for name, figures in best.items():
        (a, x), (b, y), *more = figures.items()
        print(f"{name:34s} {a} {x:8.3f}   {b} {y:8.3f}   ratio {x / y:5.2f}")
        for c, z in more:
            print(f"{'':34s} {c} {z:8.3f}   ratio {z / y:5.2f}")


if __name__ == "__main__":
    main()
