"""The run-axis alignment a batch's own operations need, read off one traced step.

:mod:`gamedyn.runaxis` pads every batch to a multiple of a vector-loop block (32 runs under
AVX-512), which makes a run's numbers independent of its batch-mates whatever the step does. For a
neural game that padding is most of the arithmetic: 8 seeds cost what 32 do. Most of a neural
step's operations cannot tell batches apart anyway: a loop's scalar tail is only reached by an
elementwise operation whose loop spans the run axis and whose length R·s (s elements per run) is
not a multiple of the block, and only an operation whose vector and scalar code round differently
(``exp``, ``pow``, ``add`` with an ``alpha``, …) turns that into a different number. So the
alignment a step needs is the least R such that every such operation's R·s is a whole number of
blocks: the least common multiple of ``block / gcd(block, s)`` over them (1 when s is a multiple of
the block, as for a 64-wide hidden layer on a minibatch of 64).

:func:`needed` runs a step (and a record) of a *probe* batch of :func:`probe_runs` runs (a prime:
a tensor spans the run axis exactly when a dimension's size is a multiple of it) under a dispatch
mode that sees every ATen operation, autograd's backward included, and applies these rules to each
one whose output spans the run axis (block: :data:`gamedyn.runaxis.BLOCK_BYTES` over the smallest
floating-point item size among its operands):

- **exact** (:data:`EXACT`: IEEE's correctly rounded +, −, ×, ÷, √, comparisons, copies, selection;
  ``add``/``sub`` only with ``alpha`` = 1, ``pow`` only with the exponents ATen turns into them):
  vector and scalar code give the same bits, nothing needed. So is integer and boolean work.
- **neutral** (:data:`NEUTRAL`: views, indexing, concatenation, matrix products and
  factorisations — each run's computed alone, as with the full padding — and the largest or
  smallest element, exact in any order): nothing needed.
- **reductions** (:data:`REDUCTIONS`, over the schema's ``dim``): one over the run axis mixes runs
  (a sum of every run's loss, the seed of a backward pass) and says nothing about a run's numbers;
  one over a dimension of size > 1 with a smaller stride than the run axis's stays within a run's
  elements, nothing needed; one over dimensions with larger strides only may vectorise across
  runs: ``block / gcd(block, q)``, q the elements in the dimensions of smaller stride (a sum over
  dimensions of size 1 is exact). Two dimensions that could be the run axis: the whole block.
- **convolutions** (:data:`WHOLE_BLOCK`) get the whole block: under ``vmap`` they are grouped
  convolutions with R groups, whose algorithm oneDNN may choose by R.
- **anything else** is an elementwise operation that may round differently in its tail:
  ``block / gcd(block, s)`` for a contiguous output of s elements per run (the loop spans the run
  axis only where all of it coalesces into one dimension, and then its length is R·s), the whole
  block for another output.

The answer is a property of the structure (game, rule, optimizer, regularizer, recording), the
same for any R, and is cached per structure within a process (:func:`for_structure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

#: Runs in the probe batch at most: a prime, so that a dimension spans the run axis iff its size is
#: a multiple (:func:`probe_runs`).
PROBE_RUNS = 37


def probe_runs(n_runs: int) -> int:
    """The probe batch's size for a batch of ``n_runs``: the least prime ≥ max(``n_runs``, 11), at
    most :data:`PROBE_RUNS` (no more memory than the batch itself needs, give or take a few runs;
    not below 11, whose multiples are rare among tensor sizes).
    A prime that happens to divide a size of the step's tensors only makes the answer more
    cautious: a shared tensor taken for one spanning the run axis asks for alignment it does not
    need, and a reduction with two candidate run dimensions asks for the whole block."""
    p = max(min(n_runs, PROBE_RUNS), 11)
    while any(p % d == 0 for d in range(2, math.isqrt(p) + 1)):
        p += 1
    return min(p, PROBE_RUNS)


#: Operations whose vectorised and scalar code round identically (one IEEE operation per element,
#: or none): the names of ATen overload packets, in-place forms (trailing ``_``) included.
EXACT = frozenset("""
    add sub rsub mul div neg abs sqrt reciprocal sign clamp clamp_min clamp_max maximum minimum
    fmax fmin where eq ne lt le gt ge logical_and logical_or logical_not logical_xor
    bitwise_and bitwise_or bitwise_xor bitwise_not bitwise_left_shift bitwise_right_shift
    __and__ __or__ __xor__ __lshift__ __rshift__ __ilshift__ __irshift__ __iand__ __ior__ __ixor__
    masked_fill fill zero zeros_like ones_like full_like empty_like copy _to_copy clone contiguous
    floor ceil trunc isnan isinf isfinite isneginf isposinf nan_to_num relu threshold
    threshold_backward hardtanh hardtanh_backward leaky_relu leaky_relu_backward square
    lift_fresh detach alias resize
""".split())
#: ``alpha`` scales the second operand with a fused multiply-add in ATen's vector code only.
ALPHA = frozenset({"add", "sub", "rsub"})
#: ``pow(x, e)`` exponents ATen computes as x·x, √x, 1/x in both its vector and scalar code.
EXACT_POWERS = (1.0, 2.0, 0.5, -1.0)
#: Operations without elementwise arithmetic, or whose result for a run is computed from that run's
#: operands alone by code that does not depend on R (matrix products and LAPACK's factorisations
#: over the run axis), or that are exact in any order (the largest or smallest element).
NEUTRAL = frozenset("""
    view _unsafe_view reshape expand expand_as permute transpose t numpy_T select slice unsqueeze
    squeeze as_strided unbind split split_with_sizes chunk narrow diagonal movedim unfold
    cat stack index index_select gather scatter index_put masked_select take flip roll repeat
    arange zeros ones empty empty_strided full scalar_tensor new_zeros new_empty new_ones new_full
    _local_scalar_dense item set_ randint randn rand normal uniform
    mm bmm addmm baddbmm addbmm matmul dot vdot mv addmv linear _addmm_activation
    _linalg_eigh linalg_eigh _linalg_svd linalg_cholesky_ex linalg_solve_ex _linalg_solve_ex
    linalg_lu_factor_ex linalg_lu_solve linalg_inv_ex _linalg_det _linalg_slogdet linalg_eig
    triangular_solve linalg_solve_triangular cholesky_solve
    amax amin max min all any
""".split())
#: Operations that get the whole block whatever their sizes: a convolution over the run axis is one
#: grouped convolution with R groups (``vmap``'s rule), and oneDNN may choose its algorithm by the
#: number of groups, so a run's numbers could change with R itself (the whole block keeps R as the
#: full padding does: a lone run and a batch of 8 are both stepped as one block).
WHOLE_BLOCK = frozenset("convolution _convolution convolution_backward mkldnn_convolution "
                        "_slow_conv2d_forward _slow_conv2d_backward".split())
#: Reductions that return their one element unchanged when every reduced dimension has size 1.
ONE_ELEMENT_EXACT = frozenset({"sum", "mean", "prod", "cumsum", "cumprod"})
#: Reductions along the schema's ``dim`` argument (absent or empty: every dimension).
REDUCTIONS = frozenset("""
    sum mean prod norm linalg_vector_norm var std var_mean std_mean logsumexp
    argmax argmin cumsum cumprod _softmax _log_softmax _softmax_backward_data
    _log_softmax_backward_data softmax log_softmax
""".split())


def _name(func: Any) -> str:
    return func.overloadpacket.__name__.rstrip("_") or func.overloadpacket.__name__


def _arg(func: Any, args: tuple, kwargs: dict, name: str, default: Any = None) -> Any:
    for i, a in enumerate(func._schema.arguments):
        if a.name == name:
            if name in kwargs:
                return kwargs[name]
            return args[i] if i < len(args) and not a.kwarg_only else default
    return default


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _tensors(item)]
    return []


class Needs:
    """The alignment the operations seen so far need (:meth:`see` one operation)."""

    def __init__(self, probe: int, block_bytes: int) -> None:
        self.probe, self.block_bytes = probe, block_bytes
        self.align = 1
        self.why: dict[str, int] = {}   # operation → the alignment it asked for (above 1)

    def _block(self, tensors: list[torch.Tensor]) -> int | None:
        sizes = [t.element_size() for t in tensors if t.is_floating_point() or t.is_complex()]
        return self.block_bytes // min(sizes) if sizes else None

    def _need(self, what: str, n: int) -> None:
        if n > 1:
            self.align = math.lcm(self.align, n)
            self.why[what] = math.lcm(self.why.get(what, 1), n)

    def see(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        name = _name(func)
        outs = [t for t in _tensors(out) if t.numel() and t.numel() % self.probe == 0]
        if not outs or name in NEUTRAL:
            return
        operands = _tensors(list(args) + list(kwargs.values())) + _tensors(out)
        block = self._block(operands)
        if block is None:   # integer and boolean work is exact
            return
        if name in WHOLE_BLOCK:
            self._need(name, block)
            return
        if name in REDUCTIONS:
            self._reduction(func, name, args, kwargs, block)
            return
        if name in EXACT and not (name in ALPHA and _arg(func, args, kwargs, "alpha", 1) != 1):
            return
        if name == "pow" and not isinstance(args[1], torch.Tensor) and float(args[1]) in EXACT_POWERS:
            return
        for t in outs:
            s = t.numel() // self.probe
            self._need(name, block // math.gcd(block, s) if t.is_contiguous() else block)

    def _reduction(self, func: Any, name: str, args: tuple, kwargs: dict, block: int) -> None:
        x = args[0] if isinstance(args[0], torch.Tensor) else None
        if x is None or x.numel() % self.probe:
            return   # reduces a tensor shared by the runs
        runs = [d for d, n in enumerate(x.shape) if n % self.probe == 0]
        dim = _arg(func, args, kwargs, "dim")
        dims = set(range(x.dim())) if dim is None or dim == [] else \
            {d % x.dim() for d in ([dim] if isinstance(dim, int) else dim)}
        if len(runs) != 1:
            self._need(name, block)
            return
        (d,) = runs
        if d in dims:
            return   # mixes runs: a sum of every run's value
        if name in ONE_ELEMENT_EXACT and all(x.shape[e] == 1 for e in dims):
            return   # the sum (product) of one element is that element
        st = x.stride()
        if any(x.shape[e] > 1 and st[e] < st[d] for e in dims):
            return   # a reduced dimension lies inside the run axis: the loops stay within a run
        q = math.prod(n for e, n in enumerate(x.shape) if st[e] < st[d])
        self._need(name, block // math.gcd(block, q))


def needed(fn: Callable[[], Any], probe: int = PROBE_RUNS, block_bytes: int | None = None
           ) -> tuple[int, dict[str, int]]:
    """Run ``fn()`` (which works on a batch of ``probe`` runs) and return the alignment its
    operations need, with the operations that asked for more than 1 and what each asked."""
    from . import runaxis, torch_private

    needs = Needs(probe, block_bytes or runaxis.block_bytes())
    torch_private.observe(fn, after=needs.see)
    return needs.align, needs.why


_CACHE: dict[tuple[str, str], Any] = {}


def for_structure(key: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` (an alignment, or None) once per structure ``key`` and CPU capability in this
    process."""
    k = (key, torch.backends.cpu.get_cpu_capability())
    if k not in _CACHE:
        _CACHE[k] = fn()
    return _CACHE[k]
