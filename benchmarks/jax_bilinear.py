"""A bilinear x·y study written by hand in JAX (vmap + lax.scan + jit): issue 13's baseline for
``gamedyn run`` of the same study (``bench_end_to_end.py --jax``, ``--multi``).

R runs (seeds 0..R-1, x and y drawn N(0, scale²)) of simultaneous SGD (the generator x descends
x·y, the discriminator y descends −x·y, both at ``lr``), float64, recording step 0, every
``record_every`` steps and the last step the variables gamedyn records for bilinear (gen.x[0],
disc.y[0], loss.gen, loss.disc, grad_norm.gen, grad_norm.disc, distance), then writing the same two
Parquet tables: ``runs.parquet`` (one row per run: its id, seed, learning rate, initial and final
distance, a growth label) and ``trajectories.parquet`` (long: run_id, step, variable, value).

Usage: ``python benchmarks/jax_bilinear.py OUT_DIR [--runs 1000] [--steps 10000]
[--record-every 10] [--lr 0.05] [--scale 1.0]``. Needs ``jax`` (``pip install gamedyn[bench]``).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

VARIABLES = ["gen.x[0]", "disc.y[0]", "loss.gen", "loss.disc", "grad_norm.gen", "grad_norm.disc",
             "distance"]


def losses(x, y):
    return x * y, -(x * y)


grad_gen = jax.grad(lambda x, y: losses(x, y)[0], argnums=0)
grad_disc = jax.grad(lambda x, y: losses(x, y)[1], argnums=1)


def record(x, y):
    lg, ld = losses(x, y)
    return jnp.stack([x, y, lg, ld, jnp.abs(grad_gen(x, y)), jnp.abs(grad_disc(x, y)),
                      jnp.sqrt(x * x + y * y)])


def make_run(steps: int, every: int):
    def step(state, _):
        x, y, lr = state
        gx, gy = grad_gen(x, y), grad_disc(x, y)          # simultaneous: both from the same point
        return (x - lr * gx, y - lr * gy, lr), None

    def interval(state, _):
        state, _ = jax.lax.scan(step, state, None, length=every)
        return state, record(state[0], state[1])

    def run(key, lr, scale):
        x, y = scale * jax.random.normal(key, (2,), dtype=jnp.float64)
        state = (x, y, lr)
        first = record(x, y)
        state, recs = jax.lax.scan(interval, state, None, length=steps // every)
        parts = [first[None], recs]
        if steps % every:                                   # the last step is always recorded
            state, _ = jax.lax.scan(step, state, None, length=steps % every)
            parts.append(record(state[0], state[1])[None])
        return jnp.concatenate(parts)                       # [T, V]

    return jax.jit(jax.vmap(run, in_axes=(0, 0, None)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--record-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()

    seeds = np.arange(a.runs)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
    lrs = jnp.full(a.runs, a.lr, dtype=jnp.float64)
    recs = np.asarray(make_run(a.steps, a.record_every)(keys, lrs, a.scale))   # [R, T, V]
    R, T, V = recs.shape
    steps = np.append(np.arange(0, a.steps, a.record_every), a.steps)[:T]

    run_ids = [hashlib.sha1(f"bilinear/simultaneous/sgd/{a.lr}/normal/{a.scale}/{s}".encode())
               .hexdigest()[:12] for s in seeds]
    dist = recs[:, :, VARIABLES.index("distance")]
    growth = dist[:, -1] / dist[:, 0]
    runs = pd.DataFrame({"run_id": run_ids, "study": "jax_bilinear", "game": "bilinear",
                         "rule": "simultaneous", "seed": seeds, "optimizer.name": "sgd",
                         "optimizer.lr": a.lr, "init.dist": "normal", "init.scale": a.scale,
                         "steps": a.steps, "record_every": a.record_every,
                         "initial_distance": dist[:, 0], "final_distance": dist[:, -1],
                         "dynamics": np.where(growth > 1.25, "diverged",
                                              np.where(growth < 0.8, "converged", "bounded"))})
    traj = pd.DataFrame({
        "run_id": pd.Categorical.from_codes(np.repeat(np.arange(R), T * V), categories=run_ids),
        "step": np.tile(np.repeat(steps, V), R),
        "variable": pd.Categorical.from_codes(np.tile(np.arange(V), R * T), categories=VARIABLES),
        "value": recs.reshape(-1)})
    a.out.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(a.out / "runs.parquet", index=False)
    traj.to_parquet(a.out / "trajectories.parquet", index=False)


if __name__ == "__main__":
    main()
