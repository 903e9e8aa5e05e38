"""The private torch API that fused stepping (:mod:`gamedyn.fuse`) uses, in one place.

Fusion traces a chunk of steps into a graph of ATen operations and hands it to Inductor without
Dynamo (whose frame evaluation and guards cost several times the fused kernel at R = 1,000). No
public entry point does that at the same cost in torch 2.13 (measured in
``benchmarks/bench_compile_entry.py``): ``torch._inductor.compile(gm, inputs)`` runs AOTAutograd over
the already-traced ATen graph again, and ``torch.compile(fullgraph=True)`` traces Python with Dynamo
and guards every call. So these private names are used, and nowhere else than here:

- ``torch.fx.experimental.proxy_tensor.make_fx`` (``tracing_mode="fake"``,
  ``_allow_non_fake_inputs``) and ``torch._inductor.decomposition.select_decomp_table``: tracing;
- ``torch._subclasses.fake_tensor.FakeTensor``/``FakeTensorMode`` and
  ``torch.fx.experimental.symbolic_shapes.ShapeEnv``: the fake inputs traced on;
- ``torch._ops.OpOverload`` (its schema's ``is_mutable``): refusing in-place steps;
- ``torch._inductor.compile_fx.compile_fx_inner`` under ``torch._guards.tracing`` /
  ``TracingContext``: compiling (and loading from Inductor's FX-graph cache);
- ``torch._inductor.config.cpp.vec_isa_ok``, ``torch._inductor.cpu_vec_isa.valid_vec_isa_list``,
  ``supported_vec_isa_list`` and ``VecISA.check_build``: the CPU's vector instructions without
  Inductor's probes (:func:`compile_graph`);
- ``torch._inductor.config.size_asserts`` and ``alignment_asserts``: compiled graphs that do not
  check their inputs' layouts on every call (:func:`compile_graph`);
- ``torch.utils._python_dispatch._get_current_dispatch_mode`` and
  ``torch._C._functorch.peek_interpreter_stack``: whether a dispatch mode or a ``torch.func``
  transform is active (:func:`in_dispatch_mode`);
- ``torch.utils._python_dispatch.TorchDispatchMode``: seeing the ATen operations of a call
  (:func:`observe`): counting those of an eager step, which ``auto`` prices (:func:`count_ops`),
  the run-axis alignment they need (:mod:`gamedyn.alignment`), recording them for a replay
  (:mod:`gamedyn.replay`).

They are tested on the torch versions in :data:`TESTED`. On another version fusion still tries, and
the runs table's ``stepping_note`` says that the version is untested (:func:`untested`), or which of
these names it lacks (:func:`missing`) when it cannot.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

#: torch versions (major.minor) on which this module's names are tested (CI pins the first).
TESTED = ("2.13",)

#: The private names that pricing an eager step uses, (module, attribute): cheap to import.
COUNTING = (("torch.utils._python_dispatch", "TorchDispatchMode"),)
#: The private names that tracing and compiling use (importing Inductor takes seconds).
COMPILING = (
    ("torch.fx.experimental.proxy_tensor", "make_fx"),
    ("torch._inductor.decomposition", "select_decomp_table"),
    ("torch._subclasses.fake_tensor", "FakeTensor"),
    ("torch._subclasses.fake_tensor", "FakeTensorMode"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv"),
    ("torch._ops", "OpOverload"),
    ("torch._inductor.compile_fx", "compile_fx_inner"),
    ("torch._guards", "TracingContext"),
    ("torch._guards", "tracing"),
    ("torch._inductor.config", "cpp"),
    ("torch._inductor.config", "size_asserts"),
    ("torch._inductor.config", "alignment_asserts"),
    ("torch._inductor.cpu_vec_isa", "valid_vec_isa_list"),
    ("torch._inductor.cpu_vec_isa", "VecISA"),
    ("torch._inductor.cpu_vec_isa", "supported_vec_isa_list"),
)


def _version() -> str:
    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def untested() -> str:
    """A note for ``stepping_note`` when this torch is not one of :data:`TESTED`, else ``""``."""
    if _version() in TESTED:
        return ""
    return f"torch {torch.__version__} is untested for fusion (tested: {', '.join(TESTED)})"


@functools.cache
def missing(names: tuple[tuple[str, str], ...] = COMPILING) -> str:
    """Which of ``names`` this torch lacks, as a ``stepping_note`` (``""`` when it has them all)."""
    absent = []
    for module, name in names:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            absent.append(f"{module}.{name}")
    if not absent:
        return ""
    return (f"fusion needs torch's private {', '.join(absent)}, absent in torch {torch.__version__} "
            f"(tested: {', '.join(TESTED)})")


def make_fx(fn: Callable[..., Any], inputs: list[torch.Tensor]) -> torch.fx.GraphModule:
    """``fn`` traced on fake tensors into a graph of ATen operations (Inductor's decompositions)."""
    from torch._inductor.decomposition import select_decomp_table
    from torch.fx.experimental.proxy_tensor import make_fx as _make_fx

    return _make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True,
                    decomposition_table=select_decomp_table())(*inputs)


def in_dispatch_mode() -> bool:
    """Whether a Python dispatch mode is active (e.g. one counting or tracing operations), or a
    ``torch.func`` transform (``vmap``, ``grad``: its tensors are wrappers, whose operations reach
    the kernels rewritten)."""
    from torch._C._functorch import peek_interpreter_stack
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return _get_current_dispatch_mode() is not None or peek_interpreter_stack() is not None


def fake_tensors(like: Sequence[torch.Tensor], mode_of: Sequence[torch.Tensor] = ()
                 ) -> list[torch.Tensor]:
    """A distinct fake tensor for each of ``like`` (same shape, layout, dtype and device), all in the
    fake mode of the first fake tensor of ``mode_of`` or ``like`` (so that the graphs traced for one
    chunk share it), or a new one with static shapes. Distinct: make_fx traces inputs that are the
    same tensor object as one input, which would tie together what a chunk's later steps separate."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    mode = next((t.fake_mode for t in (*mode_of, *like) if isinstance(t, FakeTensor)),
                None) or FakeTensorMode(
        allow_fallback_kernels=True, allow_non_fake_inputs=True, shape_env=ShapeEnv(),
        static_shapes=True)
    with mode:
        return [torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device) for t in like]


def fake_constant(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a fake tensor of ``like``'s fake mode (static shape)."""
    return like.fake_mode.from_tensor(value, static_shapes=True)


def mutates(target: Any) -> bool:
    """Whether a graph node's target is an ATen operation that changes a tensor in place."""
    return isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable


def compile_graph(gm: torch.fx.GraphModule, fakes: list[torch.Tensor]
                  ) -> Callable[[list[torch.Tensor]], Any]:
    """Inductor's compilation of an ATen graph (or its load from Inductor's on-disk FX-graph cache,
    which needs the trace's fake mode in a tracing context, as Dynamo would give it).

    **The CPU's vector instructions are taken from ``/proc/cpuinfo``**, not probed: unless the user
    chose (``TORCHINDUCTOR_VEC_ISA_OK``), Inductor's ``config.cpp.vec_isa_ok`` is True while
    compiling (and its dry compilations of extensions such as AVX-512 bf16 and VNNI are taken to
    succeed), so that it does not build and load a test program per instruction set in subprocesses
    before its first compilation in a process: 7 of a cold bilinear chunk's 11 s, and 1.2 s a
    process with the cache warm (measured on 2 cores, gcc 12). Should a compilation fail so, it is
    retried with the probes (an old compiler that lacks an instruction set the CPU has).
    ``GAMEDYN_ISA_PROBES=1`` keeps Inductor's probes (torch's default).

    **The compiled graph does not check its inputs' sizes, strides and alignment** (Inductor's
    ``size_asserts`` and ``alignment_asserts`` off): the caller passes tensors laid out as ``fakes``
    on every call (:mod:`gamedyn.fuse` builds them so: the step's outputs in its inputs' layouts,
    records' slots and constants fixed for the batch). The checks cost ~0.35 µs per input and call:
    7 of a 20-step bilinear chunk's 17 µs with two records at R = 1,000 (19 inputs)."""
    from torch._inductor import compile_fx, config, cpu_vec_isa

    def run() -> Callable[[list[torch.Tensor]], Any]:
        with torch._guards.tracing(torch._guards.TracingContext(fakes[0].fake_mode)), \
                config.patch(size_asserts=False, alignment_asserts=False):
            return compile_fx.compile_fx_inner(gm, fakes)

    if config.cpp.vec_isa_ok is not None or os.environ.get("GAMEDYN_ISA_PROBES") == "1":
        return run()  # the user's choice (the second: Inductor's probes, as torch does by default)
    probe = cpu_vec_isa.VecISA.check_build
    try:
        config.cpp.vec_isa_ok = True
        cpu_vec_isa.VecISA.check_build = lambda self, code: True  # (extensions: bf16, VNNI, AMX)
        return run()
    except Exception:
        cpu_vec_isa.VecISA.check_build = probe
        config.cpp.vec_isa_ok = None
        _forget_isa(cpu_vec_isa)
        return run()
    finally:
        cpu_vec_isa.VecISA.check_build = probe
        config.cpp.vec_isa_ok = None


def _forget_isa(cpu_vec_isa: Any) -> None:
    """Clear what Inductor cached of the instruction sets found without probing: the list, and
    each instruction set's cached answer (its ``__bool__`` and the like), so that they are probed."""
    cpu_vec_isa.valid_vec_isa_list.cache_clear()
    for isa in cpu_vec_isa.supported_vec_isa_list:
        for cls in type(isa).__mro__:
            for method in vars(cls).values():
                if hasattr(method, "cache_clear"):
                    method.cache_clear()


def observe(fn: Callable[[], Any], before: Callable[..., None] | None = None,
            after: Callable[..., None] | None = None) -> Any:
    """``fn()``, every ATen operation it dispatches (autograd's backward included) shown to
    ``before(func, args, kwargs)`` before it runs (which may raise to stop it) and to
    ``after(func, args, kwargs, out)`` after: the one dispatch mode of :func:`count_ops`,
    :func:`gamedyn.alignment.needed` and :class:`gamedyn.replay.Recording`."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Observe(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # else the mode's first dispatch imports Dynamo (1.3 s), which observing never runs

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            kwargs = kwargs or {}
            if before is not None:
                before(func, args, kwargs)
            out = func(*args, **kwargs)
            if after is not None:
                after(func, args, kwargs, out)
            return out

    with _Observe():
        return fn()


def count_ops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the number of ATen operations it dispatched (autograd's backward included)."""
    n = [0]

    def count(*_: Any) -> None:
        n[0] += 1

    return observe(fn, before=count), n[0]
