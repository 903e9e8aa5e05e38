"""Fusion's private entry point into Inductor against the public ones, on the same chunk.

gamedyn compiles a chunk (here: 20 steps of simultaneous SGD on bilinear x·y with two records, R =
1,000 runs) as an ATen graph traced on fake tensors, with ``compile_fx_inner``
(:mod:`gamedyn.torch_private`). The public alternatives, on the very same graph:

- ``torch._inductor.compile(gm, inputs)``: Inductor's documented entry point for an FX graph captured
  without Dynamo; it runs AOTAutograd over the graph again before Inductor;
- ``torch.compile(gm, fullgraph=True)`` with every guard dropped (``guard_filter_fn``): Dynamo
  traces the graph module's Python, then AOTAutograd and Inductor.

Each is measured in a fresh process with an empty Inductor cache (a cold compilation, the time a
user waits the first time), then its cost per call is timed in that process. Ratios against the
private path, side by side in one invocation.

Usage: ``python benchmarks/bench_compile_entry.py [--calls 2000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("private compile_fx_inner", "torch._inductor.compile", "torch.compile, no guards")


def _graph():
    """The chunk's graph and real inputs of its layouts, captured from gamedyn's own compilation."""
    import torch

    from gamedyn import make_study, torch_private
    from gamedyn.batch import run_batch

    seen = {}
    real = torch_private.compile_graph

    def capture(gm, fakes):
        seen["gm"], seen["fakes"] = gm, fakes
        raise RuntimeError("captured")  # the batch then steps eagerly; the graph is all we need

    torch_private.compile_graph = capture
    study = make_study({"name": "b", "game": "bilinear", "rules": ["simultaneous"], "seeds": 1000,
                        "steps": 40, "record_every": 10, "optimizer": {"name": "sgd", "lr": 0.05},
                        "init": {"dist": "normal", "scale": 1.0}})
    run_batch(study.batches()[0], study.thresholds, compile="on")
    torch_private.compile_graph = real
    inputs = [torch.randn(f.shape, dtype=f.dtype) if f.dtype.is_floating_point
              else torch.zeros(f.shape, dtype=f.dtype) for f in seen["fakes"]]
    return seen["gm"], seen["fakes"], inputs


def _one(path: str, calls: int) -> dict:
    import torch

    from gamedyn import torch_private

    gm, fakes, inputs = _graph()
    start = time.perf_counter()
    if path == PATHS[0]:
        fn = torch_private.compile_graph(gm, fakes)
        call = lambda: fn(list(inputs))  # noqa: E731  (it consumes its list)
    elif path == PATHS[1]:
        fn = torch._inductor.compile(gm, inputs)
        call = lambda: fn(*inputs)  # noqa: E731
    else:
        fn = torch.compile(gm, fullgraph=True,
                           options={"guard_filter_fn": lambda entries: [False] * len(entries)})
        call = lambda: fn(*inputs)  # noqa: E731
    call()
    compile_s = time.perf_counter() - start
    for _ in range(10):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return {"compile_s": compile_s, "call_us": (time.perf_counter() - start) / calls * 1e6,
            "nodes": len(gm.graph.nodes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.calls)))
        return
    out = {}
    for path in PATHS:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="gamedyn-entry-")}
        proc = subprocess.run([sys.executable, __file__, "--one", path, "--calls", str(args.calls)],
                              env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        out[path] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = out[PATHS[0]]
    print(f"chunk: 20 steps + 2 records of bilinear x·y, R = 1,000, {base['nodes']} graph nodes; "
          "cold Inductor cache, fresh process each")
    print(f"{'path':28s} {'compile (s)':>12s} {'ratio':>6s} {'call (µs)':>10s} {'ratio':>6s}")
    for path, r in out.items():
        print(f"{path:28s} {r['compile_s']:12.2f} {r['compile_s'] / base['compile_s']:6.2f} "
              f"{r['call_us']:10.1f} {r['call_us'] / base['call_us']:6.2f}")


if __name__ == "__main__":
    main()
