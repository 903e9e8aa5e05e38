"""Throughput of the user's own GAN on real data: 8 seeds of ``studies/digits_gan.yaml``'s networks
batched by gamedyn, against the same 8 seeds trained one after another in a plain PyTorch loop,
side by side in one invocation, with recording on in both.

Workload (issue 14): the ``Generator``/``Discriminator`` of ``studies/plugins/digits_mlp.py`` as
``studies/digits_gan.yaml`` names them (latent 16, hidden 64: G 16→64→64→64, D 64→64→1), scikit-
learn's 1,797 8 × 8 digits, batch 64 (64 real + 64 generated samples per step), Adam (lr 2e-3,
β 0.5, 0.999) for both players, the non-saturating loss, simultaneous play, no regularizer (the
study's γ = 0), float32; 300 steps, a record every 50 steps (the study's ``steps`` and
``record_every``).

Paths, interleaved in chunks of ``--chunk`` steps (always advancing the path that is furthest
behind, so that both see the same load on a shared, noisy machine), each path's time summed over its
chunks; ``--rounds`` such rounds after a short warm-up of both (one run, one chunk: the first
calls' one-off costs), each path's best round reported:

- ``plain PyTorch loop``: per seed, ``torch.manual_seed``, the two ``nn.Module`` classes, two
  ``torch.optim.Adam``; each step a minibatch (``torch.randint``) and latents (``torch.randn``), one
  forward, both players' gradients by ``torch.autograd.grad`` at the same point (simultaneous play,
  as gamedyn's ``simultaneous``), both optimizers stepped. At steps 0, 50, …, 300 it records what
  gamedyn records for this study, computed with the same functions of ``gamedyn.fit`` on that run
  alone: both players' losses and gradient norms, every parameter tensor's norm, and on a fixed
  evaluation sample (256 latents and 256 data samples, drawn once per seed) the discriminator's
  mean output on data and samples, the energy distance, the Fréchet distances in pixels and on the
  classifier's features, and the class metrics (classes covered, class KL, confident share, the
  10-class histogram), each logged as a Python number (``.item()``). The record's gradients are
  those of the step that starts there (gamedyn shares them the same way). It does nothing at the
  end.
- ``gamedyn``: ``gamedyn.batch.run_batch`` of the study file itself (``make_study`` of
  ``studies/digits_gan.yaml``, with ``seeds``/``steps``/``record_every`` set and no regularizer; the
  rule ``simultaneous``, through a copy that pauses every chunk): the function every worker of
  ``gamedyn run`` executes for a batch, the user's path from set-up (building the game, checking the
  networks, the data's classifier from its cache) to the diagnosis and the final players encoded.
  Not ``run_study``, which adds the study's validation and writing the Parquet tables (a plain loop
  writes nothing), and cannot be interleaved chunk by chunk; ``--run-study`` times it once, after
  the rounds.

gamedyn steps a batch of R runs padded to a multiple of the alignment its operations need
(``gamedyn.batch.alignment``, so that a run's numbers do not depend on its batch-mates): for these
networks none, so 8 seeds are stepped as 8 (the whole vector block, 32 runs on an AVX-512 CPU,
where the step needs more); the line under the FLOP count says which.

Reported: run-steps per second (runs × steps / seconds) and the speed-up over the plain loop;
achieved GFLOP/s, counting 3 × the forward FLOPs of G on 64 latents and D on 128 samples per
run-step (forward plus a backward of twice its cost; recording not counted; a model-FLOP estimate,
as in MFU accounting), against a float32 matmul of 2048² and a bmm of the workload's layer shape
(8 × [64, 64] @ [64, 64]) timed in the same invocation (before and after the rounds, the best).
The plain loop runs once per entry of ``--threads`` (default 1 and 2 intra-op threads: torch's
default here is one per core, 2, but on a shared machine two OpenMP threads wait on each other at
every tiny operation whenever another process holds a core, which made it 10-25 times slower in some
invocations); the speed-up is over the fastest of them. gamedyn chooses its own threads (one, for a
batch of 8 runs; README "A run does not depend on its batch"). Each path keeps its setting while
interleaved.

``--device cuda`` runs the same on a GPU with 64 seeds (``--runs`` to change), and says so and
stops where torch sees no GPU.

Usage: ``python benchmarks/bench_digits.py [--runs 8] [--steps 300] [--record-every 50]
[--chunk 50] [--rounds 3] [--threads 1 2] [--device cpu|cuda] [--run-study]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "studies" / "plugins"))   # the user's module, imported as a user does

from _common import Progress, interleaved, matmul_gflops, own_threads, paced_batch, synchronize  # noqa: E402
from digits_mlp import Discriminator, Generator  # noqa: E402

from gamedyn import fit, runaxis  # noqa: E402
from gamedyn.batch import alignment as batch_alignment  # noqa: E402
from gamedyn.data import digits  # noqa: E402
from gamedyn.orchestrate import run_study  # noqa: E402
from gamedyn.study import make_study  # noqa: E402

STUDY = ROOT / "studies" / "digits_gan.yaml"
GPU_RUNS = 64
GAMEDYN = "gamedyn (run_batch)"


def study_spec(n_runs: int, steps: int, record_every: int, rule: Any = "simultaneous") -> dict:
    """``studies/digits_gan.yaml`` with these seeds, steps and records, one rule, no regularizer."""
    spec = yaml.safe_load(STUDY.read_text())
    spec.pop("regularizer", None)
    spec.update(name="bench_digits", rules=[rule], seeds=n_runs, steps=steps,
                record_every=record_every, max_batch=n_runs)
    return spec


def workload(spec: dict) -> dict[str, Any]:
    """The numbers both paths share, read from the study's resolved configuration."""
    game = make_study(spec, source=str(STUDY)).runs[0].config["game"]
    opt = make_study(spec, source=str(STUDY)).runs[0].config["optimizer"]["gen"]
    return {"gen_kwargs": game["generator"]["kwargs"], "disc_kwargs": game["discriminator"]["kwargs"],
            "latent": game["latent"]["dim"], "batch": game["batch"], "eval": game["eval_samples"],
            "lr": opt["lr"], "betas": (opt["beta1"], opt["beta2"]), "eps": opt["eps"],
            "hold_fraction": game["hold_fraction"], "confidence": game["class_confidence"],
            "loss": game["loss"]}


def linear_flops(module: torch.nn.Module) -> int:
    """Forward FLOPs per sample of a module's ``nn.Linear`` layers (2 · in · out each)."""
    return sum(2 * m.in_features * m.out_features for m in module.modules()
               if isinstance(m, torch.nn.Linear))


def flops_per_run_step(w: dict[str, Any]) -> int:
    """3 × forward FLOPs of G (``batch`` latents) and D (``batch`` real + ``batch`` generated)."""
    g, d = Generator(**w["gen_kwargs"]), Discriminator(**w["disc_kwargs"])
    return 3 * (linear_flops(g) * w["batch"] + linear_flops(d) * 2 * w["batch"])


# --- the paths -----------------------------------------------------------------------------------

def evaluators(device: str) -> dict[str, dict[str, torch.Tensor]]:
    """The data's classifier (class metrics) and feature network (Fréchet distance) as tensors,
    from ``gamedyn.fit.classifier`` (fitted once, cached), as gamedyn uses them."""
    data = digits()
    clf = fit.classifier(data.x, data.y)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    return {"features": {"hidden_weight": as_t(clf.hidden_weight), "hidden_bias": as_t(clf.hidden_bias)},
            "classes": {"coef": as_t(clf.coef), "intercept": as_t(clf.intercept),
                        "prior": as_t(clf.prior)}}


def record(step: int, G: torch.nn.Module, D: torch.nn.Module, losses: tuple[torch.Tensor, ...],
           grads: tuple[tuple[torch.Tensor, ...], ...], ev: dict[str, Any], w: dict[str, Any]
           ) -> dict[str, float]:
    """One record of one run, as gamedyn records this study: the players' losses and gradient
    norms, every parameter tensor's norm, and the metrics on the fixed evaluation sample ``ev``."""
    (loss_g, loss_d), (grads_g, grads_d) = losses, grads
    row = {"step": step, "loss.gen": loss_g.item(), "loss.disc": loss_d.item(),
           "grad_norm.gen": torch.cat([g.flatten() for g in grads_g]).norm().item(),
           "grad_norm.disc": torch.cat([g.flatten() for g in grads_d]).norm().item()}
    n = ev["z"].shape[0]
    with torch.no_grad():
        for name, net in (("gen", G), ("disc", D)):
            row.update({f"norm.{name}.{k}": p.norm().item() for k, p in net.named_parameters()})
        G.eval()
        D.eval()
        x = G(ev["z"]).reshape(1, n, -1)
        a_real = D(ev["x"].reshape(n, 1, 8, 8)).reshape(-1)
        a_fake = D(x.reshape(n, 1, 8, 8)).reshape(-1)
        row["D.real"] = torch.sigmoid(a_real).mean().item()
        row["D.fake"] = torch.sigmoid(a_fake).mean().item()
        row["fit.energy"] = fit.energy_distance(x, ev["x"], ev["dd"]).item()
        row["fit.frechet_pixels"] = fit.frechet_distance(x, ref=ev["pixels"]).item()
        row["fit.frechet"] = fit.frechet_distance(fit.class_features(x, **ev["features"]),
                                                  ref=ev["feature_ref"]).item()
        m = fit.class_metrics(x, **ev["classes"], hold_fraction=w["hold_fraction"],
                              confidence=w["confidence"])
        row.update({f"fit.{k}": m[k].item() for k in ("classes_covered", "class_kl", "confident")})
        row.update({f"fit.mass[{k}]": v for k, v in enumerate(m["hist"][0].tolist())})
        G.train()
        D.train()
    return row


def plain_loop(w: dict[str, Any], record_every: int, device: str) -> Any:
    """Plain nn.Module training, one seed after another, recording as gamedyn does."""
    def run(n_runs: int, steps: int, chunk: int) -> Progress:
        x_all = torch.as_tensor(digits().x, dtype=torch.float32, device=device)  # [N, 1, 8, 8]
        evs = evaluators(device)
        n_eval, batch, N = w["eval"], w["batch"], len(x_all)
        logs: list[list[dict[str, float]]] = []
        for seed in range(n_runs):
            torch.manual_seed(seed)
            G = Generator(**w["gen_kwargs"]).to(device)
            D = Discriminator(**w["disc_kwargs"]).to(device)
            opt_g = torch.optim.Adam(G.parameters(), lr=w["lr"], betas=w["betas"], eps=w["eps"])
            opt_d = torch.optim.Adam(D.parameters(), lr=w["lr"], betas=w["betas"], eps=w["eps"])
            x_eval = x_all[torch.randint(N, (n_eval,), device=device)].reshape(1, n_eval, -1)
            ev = {"z": torch.randn(n_eval, w["latent"], device=device), "x": x_eval,
                  "dd": fit.mean_distance(x_eval, x_eval), "pixels": fit.frechet_reference(x_eval),
                  "feature_ref": fit.frechet_reference(fit.class_features(x_eval, **evs["features"])),
                  **evs}
            log: list[dict[str, float]] = []
            for step in range(steps + 1):
                x = x_all[torch.randint(N, (batch,), device=device)]
                a_real = D(x).reshape(-1)
                a_fake = D(G(torch.randn(batch, w["latent"], device=device))).reshape(-1)
                loss_d = F.softplus(-a_real).mean() + F.softplus(a_fake).mean()
                loss_g = F.softplus(-a_fake).mean()                       # non-saturating: −log D
                grads_g = torch.autograd.grad(loss_g, list(G.parameters()), retain_graph=True)
                grads_d = torch.autograd.grad(loss_d, list(D.parameters()))
                if step % record_every == 0 or step == steps:
                    log.append(record(step, G, D, (loss_g, loss_d), (grads_g, grads_d), ev, w))
                if step == steps:
                    break
                for p, g in zip(G.parameters(), grads_g):
                    p.grad = g
                for p, g in zip(D.parameters(), grads_d):
                    p.grad = g
                opt_g.step()
                opt_d.step()
                if (step + 1) % chunk == 0:
                    synchronize(device)
                    yield (seed * steps + step + 1) / (n_runs * steps)
            logs.append(log)
        assert all(len(log) == len(range(0, steps, record_every)) + 1 for log in logs)
        yield 1.0
    return run


def gamedyn_path(record_every: int, device: str) -> Any:
    """``run_batch`` of the study file (untouched), paced: ``_common.paced_batch``."""
    def run(n_runs: int, steps: int, chunk: int) -> Progress:
        spec = study_spec(n_runs, steps, record_every, {"name": "bench_simultaneous", "chunk": chunk})
        study = make_study(spec, source=str(STUDY))
        (batch,) = study.batches()
        yield from paced_batch(batch, study.thresholds, steps, chunk, device=device)
    return run


# --- the report ----------------------------------------------------------------------------------

def report(rounds: list[dict[str, float]], plains: list[str], R: int, S: int, flops: int, big: float,
           small: float, whole: float | None, args: argparse.Namespace) -> None:
    """The table (each path's best round; the speed-up over the fastest plain loop), then every
    round's seconds and speed-up, so that the noise shows."""
    best = {name: min(r[name] for r in rounds) for name in rounds[0]}
    plain = min(best[p] for p in plains)
    where = f"cuda: {torch.cuda.get_device_name()}" if args.device == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads by default)"
    print(f"digits GAN (studies/digits_gan.yaml's networks), R = {R} runs × {S} steps, G 16→64→64→64, "
          f"D 64→64→1, batch 64, Adam, non-saturating, simultaneous, float32, recording every "
          f"{args.record_every} steps; torch {torch.__version__}, {where}; paths interleaved every "
          f"{args.chunk} steps, best of {len(rounds)} rounds")
    print(f"plain matmul: {big:.1f} GFLOP/s (2048² float32), {small:.1f} GFLOP/s "
          f"(bmm {R}×[64,64]@[64,64])")
    print(f"model FLOPs per run-step: {flops / 1e6:.2f} MFLOP (3 × forward of G and D; GFLOP/s below "
          f"count the {R} runs asked for)")
    align = batch_alignment(make_study(study_spec(R, S, args.record_every), source=str(STUDY)).runs,
                            args.device)
    print(f"gamedyn steps the batch as {runaxis.padded_size(R, align)} runs: the run axis is padded "
          f"to a multiple of {align or runaxis.run_align()}, what its operations need on this CPU "
          f"({torch.backends.cpu.get_cpu_capability()}; gamedyn.alignment), so that no run's "
          f"numbers depend on its batch-mates")
    print(f"{'path':22s} {'seconds':>8s} {'run-steps/s':>12s} {'× plain':>8s} {'GFLOP/s':>8s} "
          f"{'% of matmul':>11s} {'% of bmm':>9s}")
    for name, sec in best.items():
        rate = R * S / sec
        gf = rate * flops / 1e9
        print(f"{name:22s} {sec:8.2f} {rate:12.0f} {plain / sec:8.2f} {gf:8.2f} "
              f"{100 * gf / big:10.1f}% {100 * gf / small:8.1f}%")
    print(f"speed-up of gamedyn over the fastest plain loop: {plain / best[GAMEDYN]:.2f} (best times)")
    for i, r in enumerate(rounds, 1):
        print(f"  round {i}: " + ", ".join(f"{name} {sec:.2f} s" for name, sec in r.items())
              + f"; speed-up {min(r[p] for p in plains) / r[GAMEDYN]:.2f}")
    if whole is not None:
        print(f"gamedyn.run_study of the same study (validation, stepping, diagnosis, Parquet "
              f"tables), once: {whole:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=None, help=f"seeds (default 8; {GPU_RUNS} on cuda)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--record-every", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=50, help="steps between switches of path")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each path's best")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="intra-op threads of the plain loop: one path per number")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--run-study", action="store_true",
                    help="also time gamedyn.run_study of the same study once (validation, Parquet)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"bench_digits: --device cuda: torch {torch.__version__} sees no CUDA device here; "
              f"nothing measured (run it on a machine with a GPU, or use --device cpu)")
        return 0
    R = args.runs or (GPU_RUNS if args.device == "cuda" else 8)
    S, E, dev = args.steps, args.record_every, args.device
    w = workload(study_spec(R, S, E))
    data = digits()
    fit.classifier(data.x, data.y)   # the data's evaluators, fitted or read once, for both paths
    plains = [f"plain loop, {t} thread{'s' * (t > 1)}" for t in args.threads]
    paths = {name: own_threads(plain_loop(w, E, dev), t) for name, t in zip(plains, args.threads)}
    paths[GAMEDYN] = own_threads(gamedyn_path(E, dev))
    interleaved(paths, 1, args.chunk, args.chunk)   # warm-up (first calls' one-off costs), not counted
    peaks = [matmul_gflops(R, w["batch"], 64, 64, dev)]
    rounds = [interleaved(paths, R, S, args.chunk) for _ in range(args.rounds)]
    peaks.append(matmul_gflops(R, w["batch"], 64, 64, dev))
    big, small = max(p[0] for p in peaks), max(p[1] for p in peaks)
    whole = None
    if args.run_study:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_study(make_study(study_spec(R, S, E), source=str(STUDY)), out=tmp, progress=False,
                      device=dev)
            whole = time.perf_counter() - t0

    report(rounds, plains, R, S, flops_per_run_step(w), big, small, whole, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
