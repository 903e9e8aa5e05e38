"""Throughput of neural players on the 8-Gaussian ring: gamedyn's batched path against the same runs
trained one after another with a plain ``nn.Module`` loop, side by side in one invocation.

Workload (the issue's): R = 8 seeds, 2,000 steps of simultaneous gradient play, generator
64 → 128 → 128 → 2, discriminator 2 → 128 → 128 → 1, 512 real + 512 generated samples per step,
Adam (lr 1e-4, β₁ 0.5) for both players, standard (minimax) GAN loss, float32.

Paths, interleaved in chunks of ``--chunk`` steps (always advancing the path that is furthest
behind, so that all paths see the same machine load — the machine is shared and noisy), each path's
total time summed over its chunks:

- ``sequential nn.Module``: per seed, ``torch.manual_seed``, two ``nn.Sequential`` MLPs,
  ``torch.optim.Adam``, ``torch.randn`` noise; each step one forward, the two players' gradients by
  ``torch.autograd.grad`` at the same point (simultaneous play, as gamedyn's ``simultaneous``);
- ``hand-batched bmm``: the same 8 runs stacked ([R, in, out] weights, ``torch.baddbmm``), a
  hand-written loop with ``torch.randn`` noise and ``torch.optim.Adam`` on the stacked tensors — the
  "careful stacked-weights version" of the issue, no gamedyn;
- ``gamedyn, recording``: ``run_batch`` of a ``mog_ring`` study — per-run counter-based streams,
  the rule/optimizer machinery, recording every ``--record-every`` steps with the fit metrics on a
  2,500-sample evaluation set (energy distance, mode histogram), and the diagnosis;
- ``gamedyn, no recording``: the same with ``record_every = steps`` (prices the recorder).

Reported: run-steps per second and the speed-up over the sequential loop; achieved GFLOP/s, counting
3 × the forward FLOPs of G on 512 latents and D on 1,024 samples per run-step (forward plus a
backward of twice its cost; a model-FLOP estimate, as in MFU accounting), against a plain float32
matmul of 2048² (and of the workload's own shape) timed in the same invocation; and each path's peak
resident memory above its imports (a spawned child running two record intervals of it).
A micro-benchmark compares ``torch.baddbmm`` stacks with ``torch.func`` (``stack_module_state`` +
``vmap`` + ``functional_call``) for the forward and backward of both networks.

Usage: ``python benchmarks/bench_mog.py [--runs 8] [--steps 2000] [--threads 2] [--record-every 100]
[--chunk 100]``.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import resource
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import Progress, interleaved, paced_batch, timed  # noqa: E402
from _common import matmul_gflops as _matmul_gflops  # noqa: E402

from gamedyn.games.mixture import ring_means  # noqa: E402
from gamedyn.nets import MLP  # noqa: E402
from gamedyn.study import make_study  # noqa: E402

LATENT, HIDDEN, BATCH, LR, BETAS = 64, 128, 512, 1e-4, (0.5, 0.999)
GEN = MLP((LATENT, HIDDEN, HIDDEN, 2), "relu", 1.0, "orthogonal", 0.8)
DISC = MLP((2, HIDDEN, HIDDEN, 1), "relu", 0.25, "orthogonal", 0.8)
MEANS = torch.as_tensor(ring_means(8, 2.0), dtype=torch.float32)
SIGMA = 0.02


def flops_per_run_step() -> int:
    """3 × forward FLOPs of G (512 latents) and D (512 real + 512 generated samples)."""
    return 3 * (GEN.flops(BATCH) + DISC.flops(2 * BATCH))


def data(n_runs: int, generator: torch.Generator | None = None) -> torch.Tensor:
    k = torch.randint(0, 8, (n_runs, BATCH), generator=generator)
    return MEANS[k] + SIGMA * torch.randn(n_runs, BATCH, 2, generator=generator)


# --- the paths -------------------------------------------------------------------------------


def sequential(n_runs: int, steps: int, chunk: int) -> Progress:
    """Plain nn.Module training, one run after another."""
    for seed in range(n_runs):
        torch.manual_seed(seed)
        g = GEN.load_run(GEN.module(), GEN.init_params([seed], 1), 0)
        d = DISC.load_run(DISC.module(), DISC.init_params([seed], 2), 0)
        opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
        opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
        for step in range(1, steps + 1):
            x = data(1)[0]
            fake = g(torch.randn(BATCH, LATENT))
            a_real, a_fake = d(x)[:, 0], d(fake)[:, 0]
            value = -F.softplus(-a_real).mean() - F.softplus(a_fake).mean()
            grads_g = torch.autograd.grad(value, list(g.parameters()), retain_graph=True)
            grads_d = torch.autograd.grad(-value, list(d.parameters()))
            for p, gr in zip(g.parameters(), grads_g):
                p.grad = gr
            for p, gr in zip(d.parameters(), grads_d):
                p.grad = gr
            opt_g.step()
            opt_d.step()
            if step % chunk == 0 or step == steps:
                yield (seed * steps + step) / (n_runs * steps)


def hand_batched(n_runs: int, steps: int, chunk: int) -> Progress:
    """The same runs stacked, a hand-written loop (baddbmm, torch.randn, torch.optim.Adam)."""
    torch.manual_seed(0)
    seeds = list(range(n_runs))
    pg = {k: v.requires_grad_() for k, v in GEN.init_params(seeds, 1).items()}
    pd = {k: v.requires_grad_() for k, v in DISC.init_params(seeds, 2).items()}
    opt_g = torch.optim.Adam(pg.values(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(pd.values(), lr=LR, betas=BETAS)
    for step in range(1, steps + 1):
        x = data(n_runs)
        fake = GEN(pg, torch.randn(n_runs, BATCH, LATENT))
        a_real, a_fake = DISC(pd, x)[..., 0], DISC(pd, fake)[..., 0]
        value = (-F.softplus(-a_real).mean(1) - F.softplus(a_fake).mean(1)).sum()
        grads_g = torch.autograd.grad(value, list(pg.values()), retain_graph=True)
        grads_d = torch.autograd.grad(-value, list(pd.values()))
        for p, gr in zip(pg.values(), grads_g):
            p.grad = gr
        for p, gr in zip(pd.values(), grads_d):
            p.grad = gr
        opt_g.step()
        opt_d.step()
        if step % chunk == 0 or step == steps:
            yield step / steps


def study_spec(n_runs: int, steps: int, record_every: int, chunk: int) -> dict:
    game = {"name": "mog_ring", "latent": LATENT, "gen_hidden": HIDDEN, "gen_layers": 2,
            "disc_hidden": HIDDEN, "disc_layers": 2, "batch": BATCH, "eval_samples": 2500}
    return {"name": "bench_mog", "game": game, "rules": [{"name": "bench_simultaneous", "chunk": chunk}],
            "optimizer": {"name": "adam", "lr": LR, "beta1": BETAS[0], "beta2": BETAS[1]},
            "seeds": n_runs, "steps": steps, "record_every": record_every, "dtype": "float32",
            "max_batch": n_runs}


def gamedyn_path(record_every: int | None) -> Callable[[int, int, int], Progress]:
    """``run_batch`` itself (untouched), run in a thread that pauses every ``chunk`` steps (through
    the paced copy of ``simultaneous``: ``_common.paced_batch``), so that it can be interleaved with
    the other paths."""
    def run(n_runs: int, steps: int, chunk: int) -> Progress:
        study = make_study(study_spec(n_runs, steps, record_every or steps, chunk))
        (batch,) = study.batches()
        yield from paced_batch(batch, study.thresholds, steps, chunk)
    return run


# --- measurement -----------------------------------------------------------------------------

def matmul_gflops() -> tuple[float, float]:
    """Best GFLOP/s of a 2048² float32 matmul, and of the workload's shape ([8·512, 128] @ [128, 128]
    as a bmm over 8 runs)."""
    return _matmul_gflops(8, BATCH, HIDDEN, HIDDEN)


def _peak_kib() -> int:
    """This process's peak resident set (VmHWM, KiB): per address space, so a spawned child starts
    afresh (``ru_maxrss`` would carry the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(name: str, record_every: int, n_runs: int, steps: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    fn = _paths(record_every)[name]
    before = _peak_kib()
    for _ in fn(n_runs, steps, steps):
        pass
    queue.put((before, _peak_kib()))


def peak_memory(name: str, record_every: int, n_runs: int, steps: int, threads: int) -> float:
    """MiB of peak resident memory added by running path ``name`` for ``steps`` steps in a fresh
    (spawned) child: its peak after the run against its peak after the imports. (A forked child
    would inherit the parent's OpenMP thread pool, which hangs.)"""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(name, record_every, n_runs, steps, threads, q))
    p.start()
    before, after = q.get()
    p.join()
    return (after - before) / 1024


def forward_backward_micro(n_runs: int) -> dict[str, float]:
    """ms per forward+backward of both networks on one step's samples: baddbmm vs torch.func."""
    from torch.func import functional_call, stack_module_state, vmap

    seeds = list(range(n_runs))
    pg = {k: v.requires_grad_() for k, v in GEN.init_params(seeds, 1).items()}
    pd = {k: v.requires_grad_() for k, v in DISC.init_params(seeds, 2).items()}
    z, x = torch.randn(n_runs, BATCH, LATENT), data(n_runs)

    def bmm_step():
        fake = GEN(pg, z)
        v = (DISC(pd, x).mean() - DISC(pd, fake).mean())
        torch.autograd.grad(v, [*pg.values(), *pd.values()])

    gm = [GEN.load_run(GEN.module(), {k: v.detach() for k, v in pg.items()}, r) for r in range(n_runs)]
    dm = [DISC.load_run(DISC.module(), {k: v.detach() for k, v in pd.items()}, r) for r in range(n_runs)]
    gparams, gbuf = stack_module_state(gm)
    dparams, dbuf = stack_module_state(dm)
    gbase, dbase = copy.deepcopy(gm[0]).to("meta"), copy.deepcopy(dm[0]).to("meta")

    def g_call(p, b, zz):
        return functional_call(gbase, (p, b), (zz,))

    def d_call(p, b, xx):
        return functional_call(dbase, (p, b), (xx,))

    def func_step():
        fake = vmap(g_call)(gparams, gbuf, z)
        v = vmap(d_call)(dparams, dbuf, x).mean() - vmap(d_call)(dparams, dbuf, fake).mean()
        torch.autograd.grad(v, [*gparams.values(), *dparams.values()])

    return {"baddbmm": 1e3 * timed(bmm_step, 20), "torch.func vmap": 1e3 * timed(func_step, 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--record-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=100, help="steps between switches of path")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    R, S = args.runs, args.steps

    paths = _paths(args.record_every)
    big, small = matmul_gflops()
    micro = forward_backward_micro(R)
    seconds = interleaved(paths, R, S, args.chunk)
    big2, small2 = matmul_gflops()
    big, small = max(big, big2), max(small, small2)
    report(seconds, big, small, micro, args)
    if not args.no_memory:
        memory = {name: peak_memory(name, args.record_every, R, min(S, 2 * args.record_every),
                                    args.threads) for name in paths}
        print("peak resident memory above the imports (a spawned child, "
              f"{min(S, 2 * args.record_every)} steps): "
              + ", ".join(f"{name}: {mib:.0f} MiB" for name, mib in memory.items()))


def _paths(record_every: int) -> dict[str, Callable[[int, int, int], Progress]]:
    return {
        "sequential nn.Module": sequential,
        "hand-batched bmm": hand_batched,
        f"gamedyn, recording every {record_every}": gamedyn_path(record_every),
        "gamedyn, no recording": gamedyn_path(None),
    }


def report(seconds: dict[str, float], big: float, small: float, micro: dict[str, float],
           args: argparse.Namespace) -> None:
    R, S = args.runs, args.steps
    flops = flops_per_run_step()
    seq = seconds["sequential nn.Module"]
    print(f"8-Gaussian ring, R = {R} runs × {S} steps, G 64→128→128→2, D 2→128→128→1, batch 512, "
          f"Adam, float32; torch {torch.__version__}, {args.threads} threads; paths interleaved "
          f"every {args.chunk} steps")
    print(f"plain matmul: {big:.1f} GFLOP/s (2048² float32), {small:.1f} GFLOP/s (bmm 8×[512,128]@[128,128])")
    print(f"model FLOPs per run-step: {flops / 1e6:.1f} MFLOP (3 × forward of G and D)")
    print(f"{'path':34s} {'seconds':>8s} {'run-steps/s':>12s} {'× sequential':>13s} "
          f"{'GFLOP/s':>8s} {'% of matmul':>11s}")
    for name, sec in seconds.items():
        rate = R * S / sec
        gf = rate * flops / 1e9
        print(f"{name:34s} {sec:8.1f} {rate:12.1f} {seq / sec:13.2f} {gf:8.1f} {100 * gf / big:10.0f}%")
    print("forward+backward of G and D on one step's samples, R runs stacked: "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in micro.items()), flush=True)


if __name__ == "__main__":
    main()
