"""The run axis, padded so that a run's numbers cannot depend on its batch-mates.

A batch steps R runs as one set of ``[R, …]`` tensors. The promise (DESIGN.md, README) is that a
run's trajectory is the same bit for bit alone or in any batch, on every CPU. Torch's CPU kernels do
not keep that promise by themselves, because they treat an element differently by its *position*
in a loop whose length depends on R:

- **Vector body against scalar tail.** An elementwise kernel (``cpu_kernel_vec``: sigmoid,
  softplus, pow, the backward of many ops) runs the vectorised function over blocks of
  2 × (vector width) elements and the scalar function over the rest. The two may differ in the last
  bit (SLEEF's vector ``exp`` against libm's ``exp``; a fused multiply-add in one only). The block is
  16 doubles (32 floats) with AVX-512, 8 doubles with AVX2, so a ``[1, 8]`` tensor is all tail under
  AVX-512 while ``[4, 8]`` is all body: the failure of issue 17, seen only on AVX-512 machines.
- **Thread chunks.** Past 32,768 elements, an intra-op parallel loop splits its range into
  ⌈n / threads⌉-sized chunks, and each chunk has its own tail.
- **Shape-dependent algorithms.** With R = 1 a ``[1, n]`` tensor coalesces to a flat one and some
  reductions switch algorithm.

So every batch is stepped with R padded up to a multiple of :func:`run_align` runs by copies of its
last run (their results are dropped): the number of float32 elements in a vector loop's block, 32
under AVX-512 and 16 under AVX2 or the default kernels (128 or 64 bytes, read from
``torch.backends.cpu.get_cpu_capability()``; 128 runs on an architecture not listed). A loop that
spans the run axis then has R·s elements (s per run), a multiple of every block (float64 blocks
are half as long): no element is ever in a tail. A loop that does not span the run axis has a
length set by one run's shapes, the same in every batch. Lanes of a vector are independent, so
which lane a run lands in does not matter, and R is never 1, so no kernel sees a degenerate run
axis. Intra-op threads: two where R is a multiple of twice the alignment (two chunks of R·s/2, again
whole blocks; ⌈n / 32768⌉ can then only choose one or two) and at least :data:`PARALLEL_MIN_RUNS`,
one otherwise (:func:`threads_for`). Below 32,768 elements ATen's loops run on one thread anyway,
and a second OpenMP thread only waits, spinning: on a machine whose cores are busy (other workers,
other programs) that made tiny eager ops up to 100× slower (measured: ``exp`` of 1,024 doubles,
3 µs on one thread, 160 µs with two while the other core was busy).

The cost is the padding runs: nothing for toy games, whose steps cost Python and dispatch rather
than arithmetic; for neural players, a batch of 5 runs would do the arithmetic of 16 (AVX2) or 32
(AVX-512). So a neural batch stepped eagerly is padded only to the alignment its own operations
need, read off one traced step (:mod:`gamedyn.alignment`, :func:`gamedyn.batch.alignment`; the
``align`` argument below), often none. Records are kept for the real runs only. Batches of one
padded size share one shape, so compiled chunks (:mod:`gamedyn.fuse`) are reused across them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

#: Bytes in one block of a vectorised elementwise loop (2 vectors) per CPU capability; others: 512.
BLOCK_BYTES = {"DEFAULT": 64, "AVX2": 64, "AVX512": 128}
#: Fewest (padded) runs stepped on two threads: ATen's grain size, below which its loops stay on one.
PARALLEL_MIN_RUNS = 32768

T = TypeVar("T")


def block_bytes() -> int:
    """Bytes in one block of this CPU's vectorised elementwise loops (:data:`BLOCK_BYTES`)."""
    return BLOCK_BYTES.get(torch.backends.cpu.get_cpu_capability(), 512)


def run_align() -> int:
    """Runs per alignment unit: the float32 elements in one vector-loop block of this CPU's kernels."""
    return block_bytes() // 4


def padded_size(n_runs: int, align: int | None = None) -> int:
    """The number of runs a batch of ``n_runs`` is stepped as: the next multiple of ``align``
    (default :func:`run_align`; at least 2, so that no kernel sees a run axis of one)."""
    if n_runs < 1:
        raise ValueError(f"a batch needs at least one run, got {n_runs}")
    a = align or run_align()
    return max(2, -(-n_runs // a) * a)


def pad(items: Sequence[T], align: int | None = None) -> list[T]:
    """``items`` followed by copies of its last item, :func:`padded_size` in all."""
    return list(items) + [items[-1]] * (padded_size(len(items), align) - len(items))


def whole_blocks(fn: Callable[..., torch.Tensor], *xs: torch.Tensor) -> torch.Tensor:
    """``fn(*xs)`` for small per-run tensors ``xs`` (all [R] or all [R, k]), elementwise, computed
    with each run's row widened to whole vector-loop blocks (by copies of its last element): every
    element is in a loop's vector body whatever R is, so an operation whose vector and scalar code
    round differently (``pow``, ``log``) gives a run the same bits in any batch without padding the
    batch (:mod:`gamedyn.alignment`)."""
    flat = xs[0].dim() == 1
    rows = [x.unsqueeze(-1) if flat else x for x in xs]
    k = rows[0].shape[-1]
    block = block_bytes() // rows[0].element_size()
    wide = [torch.cat([x, x[..., -1:].expand(*x.shape[:-1], -k % block)], -1) for x in rows]
    out = fn(*wide)[..., :k]
    return out[..., 0] if flat else out


def aligned_batch(n_runs: int) -> int:
    """The largest batch size ≤ ``n_runs`` that needs no padding (``n_runs`` itself below
    :func:`run_align`): how many runs to put in a batch so that none of its work is wasted."""
    a = run_align()
    return n_runs if n_runs < a else n_runs // a * a


def threads_for(n_padded: int, requested: int | None = None) -> int:
    """Intra-op threads for a padded batch: two (or ``requested`` if fewer) where ``n_padded`` is a
    multiple of twice :func:`run_align` and at least :data:`PARALLEL_MIN_RUNS`, else one."""
    wanted = requested or torch.get_num_threads()
    two = n_padded % (2 * run_align()) == 0 and n_padded >= PARALLEL_MIN_RUNS
    return 2 if wanted >= 2 and two else 1


@contextlib.contextmanager
def stepping_threads(n_padded: int, requested: int | None = None) -> Iterator[int]:
    """Step a padded batch on :func:`threads_for` intra-op threads; restores torch's setting
    afterwards. Yields the number used."""
    before = torch.get_num_threads()
    n = threads_for(n_padded, requested)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
