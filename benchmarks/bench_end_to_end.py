"""Speed as a user feels it: whole commands in fresh processes, against what a researcher would
write by hand, side by side in one invocation (ratios: machines here are noisy).

- ``quickstart``: ``gamedyn run studies/quickstart.yaml -j 2`` (figures on, a fresh process, an
  empty Inductor cache and results folder) against a naive per-run script of the same 27 runs
  (torch scalars, ``torch.optim.SGD``, a record of every step, one Parquet file at the end), each
  timed as a whole process;
- ``eager overhead``: a step of one Dirac-GAN batch (R runs, simultaneous SGD, a record every
  step) through ``run_batch(..., compile="off")`` (the difference between 4S and S steps, so that
  the batch's fixed costs cancel; with its part files written, and its stepping loop alone)
  against a hand-batched eager loop over the same [R] tensors with ``torch.optim.SGD`` and the same
  recorded values kept in a tensor, in this process;
- ``start-up``: ``gamedyn list`` against ``python -c "import torch"``.

Behind flags (each run once, after the rows above; ``--extras-only`` skips those):

- ``--jax`` (target 2): ``gamedyn run`` of a 1,000-run × 10,000-step bilinear study (simultaneous
  SGD, lr 0.05, normal init, recording every 10 steps, figures on, ``-j 2``) with a cold Inductor
  cache (an empty ``TORCHINDUCTOR_CACHE_DIR``) and then a warm one (the same cache, a fresh results
  folder), against ``benchmarks/jax_bilinear.py`` (vmap + lax.scan + jit, the same records and the
  same two Parquet tables), each a whole process. Needs ``jax`` (``pip install gamedyn[bench]``);
  without it the JAX row is skipped with a message;
- ``--multi`` (target 6): the same study with 10,000 runs in 10 batches (``max_batch: 1000``),
  cold cache, against the JAX script on 10,000 runs; and (target 4) its ``phase_plane`` figure
  drawn in a fresh process, against 1 s;
- ``--many`` (target 7): ``benchmarks/many_structures.yaml`` (99 Dirac-GAN structures × 80 runs
  in 11 batches × 3,000 steps), cold cache. It takes about a minute; ``--quick`` runs it with 100
  steps instead (the same structures and runs) and *extrapolates* to 3,000 steps: the batches' stepping loops
  (the runs table's ``wall_time``, summed, halved for two workers) scaled by 3,000 / 100, plus
  everything else as measured.
- ``--records`` (target 8): recording every 10 steps in a compiled 1,000-run bilinear batch,
  for each ``record:`` choice, against the memory floor of the records it keeps
  (``bench_toy.record_costs``: the steady state, each loop the best of ``--repeat`` rounds, for a
  worker's batches after its first, which record into the memory the one before left, and for a
  worker's first batch, which records into fresh memory);
- ``--cold-compile`` (target 5): one batch of each of :data:`COMPILED` (1,000 runs, ``--compile
  on``) in a fresh process with an empty Inductor cache, its ``compile_time`` (tracing, Inductor,
  the C++ compiler, loading; Inductor's imports included), as gamedyn compiles now against
  before: ``GAMEDYN_ISA_PROBES=1`` (Inductor probing the CPU's vector instructions by compiling
  test programs, as torch does by default) and chunks of ``MAX_UNROLL`` steps whatever a step's
  size (``fuse.CHUNK_OPERATIONS`` unbounded), interleaved.

Each figure of the default rows is the best of ``--repeat`` interleaved rounds. Usage:
``python benchmarks/bench_end_to_end.py [--repeat 3] [--runs 1000] [--steps 300]
[--jax] [--multi] [--many [--quick]] [--records] [--cold-compile] [--extras-only]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

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
    from gamedyn.results import ResultsFolder

    def batch_seconds(n: int) -> tuple[float, float]:
        """(the whole batch with its part files written, as ``gamedyn run`` does; its stepping
        loop: the runs table's wall_time × runs)."""
        study = make_study({"name": "e", "game": {"name": "dirac", "loss": "gan"},
                            "rules": ["simultaneous"], "optimizer": {"name": "sgd", "lr": 0.1},
                            "init": {"dist": "normal", "scale": 0.5}, "seeds": runs, "steps": n,
                            "record_every": 1})
        (batch,) = study.batches()
        with tempfile.TemporaryDirectory() as tmp:
            folder = ResultsFolder(Path(tmp), "e")
            folder.parts.mkdir(parents=True)
            start = time.perf_counter()
            res = run_batch(batch, study.thresholds, compile="off")
            folder.write_part(res.batch_id, res.runs, res.records)
            return time.perf_counter() - start, res.runs["wall_time"].sum()

    # a step's marginal cost: the batch's fixed costs (set-up, stability, diagnosis) cancel; each
    # length the median of three batches (a whole batch's time varies by tens of ms: first touches
    # of memory, garbage collections), and 4S against S steps, so that the difference outweighs it
    (whole1, loop1), (whole2, loop2) = (np.median([batch_seconds(n) for _ in range(3)], axis=0)
                                        for n in (steps, 4 * steps))
    ours, loop = (whole2 - whole1) / (3 * steps), (loop2 - loop1) / (3 * steps)

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


def _fresh_env(tmp: Path) -> dict[str, str]:
    """An environment whose Inductor cache is an empty folder (a cold cache)."""
    return {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="inductor-", dir=tmp)}


def _gamedyn_run(study: Path, out: Path, env: dict[str, str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return _timed([PY, "-m", "gamedyn", "run", str(study), "-j", "2", "--quiet", "--out", str(out)],
                  env)


def _have_jax() -> bool:
    import importlib.util
    if importlib.util.find_spec("jax") is None:
        print("JAX row skipped: jax is not installed (pip install 'gamedyn[bench]' or pip install jax)")
        return False
    return True


def bilinear_study(tmp: Path, runs: int, name: str) -> Path:
    """Issue 13's bilinear study: R runs × 10,000 steps, recording every 10, defaults otherwise
    (figures on), at most 1,000 runs a batch."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "game": "bilinear", "rules": ["simultaneous"],
        "optimizer": {"name": "sgd", "lr": 0.05}, "init": {"dist": "normal", "scale": 1.0},
        "seeds": runs, "steps": 10000, "record_every": 10, "max_batch": 1000}))
    return path


def against_jax(tmp: Path) -> dict[str, float]:
    """Target 2: the 1,000-run study, gamedyn cold and warm, against the JAX script."""
    study, env = bilinear_study(tmp, 1000, "bilinear_1000"), _fresh_env(tmp)
    result = {"gamedyn cold cache": _gamedyn_run(study, tmp / "r-cold", env)}
    if _have_jax():
        result["JAX script"] = _timed([PY, str(ROOT / "benchmarks" / "jax_bilinear.py"),
                                       str(tmp / "jax-1000"), "--runs", "1000"])
    result["gamedyn warm cache"] = _gamedyn_run(study, tmp / "r-warm", env)
    return result


#: Target 4's figure time: ``phase_plane`` drawn in a fresh process (matplotlib's import included).
FIGURE_TIME = ("import sys, time, gamedyn; from gamedyn.figures.phase_plane import phase_plane; "
               "r = gamedyn.load(sys.argv[1]); t = time.perf_counter(); phase_plane(r, sys.argv[2]); "
               "print(time.perf_counter() - t)")


def figure_time(results: Path, png: Path) -> float:
    """Seconds ``phase_plane`` takes on the study in ``results``, in a fresh process."""
    out = subprocess.run([PY, "-c", FIGURE_TIME, str(results), str(png)], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def multi_batch(tmp: Path) -> dict[str, float]:
    """Target 6: 10 × 1,000 runs × 10,000 steps (ten batches), cold cache, against JAX."""
    result = {"gamedyn, 10 batches": _gamedyn_run(bilinear_study(tmp, 10000, "bilinear_10x1000"),
                                                  tmp / "r-multi", _fresh_env(tmp))}
    if _have_jax():
        result["JAX script, 10,000 runs"] = _timed(
            [PY, str(ROOT / "benchmarks" / "jax_bilinear.py"), str(tmp / "jax-10000"),
             "--runs", "10000"])
    return result


def many_structures(tmp: Path, quick: bool) -> dict[str, float]:
    """Target 7: 99 Dirac-GAN structures × 80 runs (11 batches) × 3,000 steps (``--quick``: 100
    steps, and an extrapolation to 3,000 that scales the measured stepping loops)."""
    spec = yaml.safe_load((ROOT / "benchmarks" / "many_structures.yaml").read_text())
    full, steps = spec["steps"], 100 if quick else spec["steps"]
    study = tmp / "many_structures.yaml"
    study.write_text(yaml.safe_dump({**spec, "steps": steps}))
    out = tmp / "r-many"
    whole = _gamedyn_run(study, out, _fresh_env(tmp))
    if not quick:
        return {"gamedyn": whole}
    loops = pd.read_parquet(out / spec["name"] / "runs.parquet")["wall_time"].sum() / 2
    return {f"gamedyn, {steps} steps (measured)": whole,
            f"extrapolated to {full} steps": whole + loops * (full / steps - 1),
            f"of which stepping, {steps} steps": loops}


#: Target 5's structures: (label, game, rule, optimizer), one compiled batch each.
COMPILED = (("bilinear, simultaneous SGD", "bilinear", "simultaneous", {"name": "sgd", "lr": 0.01}),
            ("Dirac-GAN, simultaneous SGD", "dirac", "simultaneous", {"name": "sgd", "lr": 0.01}),
            ("Dirac-GAN, SGA with Adam", "dirac", {"name": "sga", "lam": 1.0},
             {"name": "adam", "lr": 0.01}),
            ("Dirac-GAN, unrolled (k = 5) with Adam", "dirac", {"name": "unrolled", "k": 5},
             {"name": "adam", "lr": 0.01}))

#: A batch of one of :data:`COMPILED` compiled in this process; prints its compile time.
#: ``argv[2]``: the most operations of steps a chunk unrolls (``fuse.CHUNK_OPERATIONS``; before
#: that limit, every chunk unrolled ``fuse.MAX_UNROLL`` steps: a huge number).
COMPILE_ONE = ("import json, sys; from gamedyn import make_study, fuse; from gamedyn.batch import run_batch; "
               "fuse.CHUNK_OPERATIONS = int(sys.argv[2]); "
               "spec = json.loads(sys.argv[1]); (b,) = make_study(spec).batches(); "
               "r = run_batch(b, None, compile='on').runs; "
               "assert r['stepping'].iloc[0] == 'compiled', r['stepping_note'].iloc[0]; "
               "print(r['compile_time'].iloc[0])")


def cold_compile(tmp: Path) -> dict[str, float]:
    """Target 5: each structure's cold compile time, now and as before: with Inductor's ISA
    probes and chunks of ``MAX_UNROLL`` steps whatever their graph."""
    from gamedyn.fuse import CHUNK_OPERATIONS

    result = {}
    for label, game, rule, optimizer in COMPILED:
        spec = {"name": "c", "game": game, "rules": [rule], "optimizer": optimizer,
                "init": {"dist": "normal", "scale": 1.0}, "seeds": 1000, "steps": 200,
                "record_every": 10, "max_batch": 1000}
        for probes, ops in (("0", CHUNK_OPERATIONS), ("1", 10 ** 9)):
            env = {**_fresh_env(tmp), "GAMEDYN_ISA_PROBES": probes}
            out = subprocess.run([PY, "-c", COMPILE_ONE, json.dumps(spec), str(ops)], cwd=ROOT,
                                 env=env, check=True, capture_output=True, text=True)
            key = f"{label}, {'before' if probes == '1' else 'now'}"
            result[key] = float(out.stdout.strip().splitlines()[-1])
    return result


def startup() -> dict[str, float]:
    return {"gamedyn list": _timed([PY, "-m", "gamedyn", "list"]),
            "import torch": _timed([PY, "-c", "import torch"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jax", action="store_true", help="target 2: the 1,000-run study against JAX")
    ap.add_argument("--multi", action="store_true", help="target 6: 10 batches of 1,000 runs")
    ap.add_argument("--many", action="store_true", help="target 7: the many-structure study")
    ap.add_argument("--quick", action="store_true", help="--many with 100 steps, extrapolated")
    ap.add_argument("--cold-compile", action="store_true",
                    help="target 5: cold compile times, now and with Inductor's ISA probes")
    ap.add_argument("--records", action="store_true",
                    help="target 8: recording over its memory floor (bench_toy.py --records-only)")
    ap.add_argument("--extras-only", action="store_true", help="only the flagged measurements")
    args = ap.parse_args()
    best: dict[str, dict[str, float]] = {}
    extras: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gamedyn-e2e-") as tmp:
        for _ in range(0 if args.extras_only else args.repeat):
            for name, result in (("quickstart (s, whole process)", quickstart(Path(tmp))),
                                 (f"eager step, R = {args.runs} (ms)",
                                  {k: v * 1e3 for k, v in eager_overhead(args.runs, args.steps).items()}),
                                 ("start-up (s)", startup())):
                for k, v in result.items():
                    best.setdefault(name, {})[k] = min(best.get(name, {}).get(k, float("inf")), v)
        if args.jax:
            extras["1,000 × 10,000 bilinear (s, whole process)"] = against_jax(Path(tmp))
        if args.multi:
            extras["10 × 1,000 × 10,000 bilinear (s)"] = multi_batch(Path(tmp))
            extras["its phase_plane figure (s)"] = {"fresh process, imports included": figure_time(
                Path(tmp) / "r-multi" / "bilinear_10x1000", Path(tmp) / "multi.png")}
        if args.many:
            extras["many structures, 99 × 80 runs (s)"] = many_structures(Path(tmp), args.quick)
        if args.cold_compile:
            extras["cold compilation, 1,000 runs (s)"] = cold_compile(Path(tmp))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs"
          + (f"; best of {args.repeat} interleaved rounds" if best else ""))
    for name, figures in best.items():
        (a, x), (b, y), *more = figures.items()
        print(f"{name:34s} {a} {x:8.3f}   {b} {y:8.3f}   ratio {x / y:5.2f}")
        for c, z in more:
            print(f"{'':34s} {c} {z:8.3f}   ratio {z / y:5.2f}")
    targets = {"10 × 1,000 × 10,000 bilinear (s)": 12.0, "many structures, 99 × 80 runs (s)": 90.0,
               "its phase_plane figure (s)": 1.0}
    if extras:
        print("one round each (the machine is shared and noisy); ratios against the baseline, "
              "the first row's against issue 13's target where it has no baseline")
    for name, figures in extras.items():
        items = list(figures.items())
        base = next((v for k, v in items if k.startswith("JAX")), None)
        for i, (k, v) in enumerate(items):
            label = name if i == 0 else ""
            if base is not None and not k.startswith("JAX"):
                print(f"{label:44s} {k:34s} {v:8.2f}   × JAX {v / base:6.2f}")
            elif base is None and name in targets and not ("stepping" in k or "measured" in k):
                print(f"{label:44s} {k:34s} {v:8.2f}   × target ({targets[name]:.0f} s) "
                      f"{v / targets[name]:6.2f}")
            else:
                print(f"{label:44s} {k:34s} {v:8.2f}")
        if name.startswith("cold compilation"):
            for k, v in items[::2]:
                before = figures[k.replace(", now", ", before")]
                print(f"{'':44s} {k.replace(', now', ''):34s} {before / v:8.2f}× cheaper "
                      f"(issue 13's target: ≥ 3×)")
        if name in targets and base is not None:
            print(f"{'':44s} issue 13's target: gamedyn ≤ {targets[name]:.0f} s")
    if args.records:  # prints its own table; issue 13's target: ≤ 1.5 × floor
        from bench_toy import record_costs
        record_costs(1000, 10_000, 10, [None, ["params", "losses"], ["params"]], args.repeat)


if __name__ == "__main__":
    main()
