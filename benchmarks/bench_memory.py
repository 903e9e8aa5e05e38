"""Peak memory of ``gamedyn run`` as a study grows: it is set by the memory budget (the batch size),
not by the number of runs.

What it measures, for a bilinear x·y study (simultaneous SGD, lr 1e-3, ``--steps`` steps recorded
every ``--record-every`` steps, normal initial points, one seed per run) of 1,000, 10,000 and
100,000 runs (``--sizes``):

- each ``gamedyn run --quiet --no-figures`` child's **peak resident memory** (its ``ru_maxrss`` from
  ``os.wait4``: the high-water mark of that process and of any worker it waited for), and its wall
  time (start-up, stepping, diagnosis, part files, assembly);
- the batches the budget gave (their number and largest size, from ``runs.parquet``);
- the size of ``trajectories.parquet`` and the bytes its rows would take as one pandas DataFrame
  (21 bytes a row: what an in-memory assembly would hold at the least, before sorting copies);
- the studies of ``--compare`` runs again with a small ``--memory-budget`` (``--small-budget`` MiB),
  beside the default budget: smaller batches, a lower peak, the same tables;
- for reference, the peak of ``gamedyn list`` (Python, torch and gamedyn imported, nothing run).

Each child runs on one worker (``-j 1``) with the default ``--compile auto``, in a temporary
``--out`` removed afterwards. Usage::

    python benchmarks/bench_memory.py [--sizes 1000,10000,100000] [--steps 1000] [--small-budget 64]
                                      [--compare 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamedyn import memory  # noqa: E402
from gamedyn.study import make_study  # noqa: E402

ROW_BYTES = 21  # run_id code (int16/int32: 2-4), step int64, variable code int8, value float64


def spec(n_runs: int, steps: int, record_every: int) -> dict:
    return {"name": f"bench_memory_{n_runs}", "game": "bilinear", "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": 1e-3}, "init": {"dist": "normal", "scale": 1.0},
            "seeds": n_runs, "steps": steps, "record_every": record_every}


def child(args: list[str]) -> tuple[float, float]:
    """Run ``python -m gamedyn.cli *args``; returns (peak resident MiB, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "gamedyn.cli", *args], stdout=subprocess.DEVNULL,
                             stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            err.seek(0)
            raise SystemExit(f"gamedyn {' '.join(args)} failed ({p.returncode}): "
                             f"{err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall  # KiB on Linux


def measure(n_runs: int, steps: int, record_every: int, budget: int | None, root: Path) -> dict:
    """One ``gamedyn run`` of the study of ``n_runs`` runs: peak, time, batches and sizes."""
    s = spec(n_runs, steps, record_every)
    path = root / f"{s['name']}.yaml"
    path.write_text(yaml.safe_dump(s))
    out = root / "out"
    extra = ["--memory-budget", str(budget)] if budget else []
    peak, wall = child(["run", str(path), "--out", str(out), "--quiet", "--no-figures", "-j", "1",
                        "--fresh", *extra])
    folder = out / s["name"]
    runs = pd.read_parquet(folder / "runs.parquet", columns=["batch_id", "batch_size"])
    traj = folder / "trajectories.parquet"
    rows = pq.ParquetFile(traj).metadata.num_rows
    row = {"runs": n_runs, "budget MiB": budget or memory.DEFAULT_BUDGET,
           "batches": runs["batch_id"].nunique(), "batch size": int(runs["batch_size"].max()),
           "peak RSS MiB": round(peak), "wall s": round(wall, 1),
           "trajectories.parquet MiB": round(traj.stat().st_size / 2 ** 20, 1),
           "as a DataFrame MiB": round(rows * ROW_BYTES / 2 ** 20), "rows": rows}
    shutil.rmtree(out)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="numbers of runs, comma-separated")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--record-every", type=int, default=10)
    ap.add_argument("--small-budget", type=int, default=64, help="MiB, for the comparison runs")
    ap.add_argument("--compare", default="10000,100000",
                    help="numbers of runs to run again with --small-budget, comma-separated")
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    compare = [int(n) for n in args.compare.split(",") if n]
    config = make_study(spec(1, args.steps, args.record_every)).runs[0].config
    per_run = memory.run_bytes(config)
    print(f"bilinear, simultaneous SGD, {args.steps} steps recorded every {args.record_every}: "
          f"{memory.records(config)} records x {memory.variables(config)} variables a run, "
          f"estimated {per_run / 1024:.0f} KiB a run in a batch; default budget "
          f"{memory.DEFAULT_BUDGET} MiB, max_batch 4096")
    base, _ = child(["list"])
    print(f"reference: `gamedyn list` (imports only) peaks at {base:.0f} MiB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, budget in [(n, None) for n in sizes] + [(n, args.small_budget) for n in compare]:
            rows.append(measure(n, args.steps, args.record_every, budget, Path(tmp)))
            print(rows[-1], flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
