"""A call's ATen operations, recorded as they run once, to be run again on new inputs.

A neural player's forward pass over the run axis is ``vmap(functional_call(…))``
(:mod:`gamedyn.modules`): on every call, ``vmap`` wraps and unwraps each input, ``functional_call``
swaps the module's parameters in and out, every layer goes through ``nn.Module.__call__``, and every
operation through a batching rule. For a small network that is two thirds of the forward pass
(a 16→64→64→64 MLP on 8 runs × 64 samples: 0.5 ms, of which 0.18 ms arithmetic). The operations
that finally reach the CPU kernels are the same on every call with inputs of the same shapes, so
:class:`Recording` runs the call once under a dispatch mode that sees each ATen operation below
autograd (the physical ``[R, …]`` tensors, not ``vmap``'s wrappers), and :meth:`Recording.run`
then calls the same operations, with the same arguments, on the new inputs. The results are the
same bits (the same kernels on the same values), and autograd, which records above the mode,
builds the same graph from them, so gradients of any order are the same too.

That holds for a function of its inputs alone. :func:`record` refuses (returns None), so that the
caller keeps its ordinary call, where the recording cannot stand for the call:

- an operation read a value into Python (``.item()``, a data-dependent branch: the branch taken
  would be frozen), or drew random numbers (a replay would draw again, but not as the call would);
- an operation wrote into an input or a constant (a parameter or buffer updated in place);
- an input was not seen by any operation (it reached the kernels as another Python object, so that
  the recording would have frozen its value);
- an operation returned something other than tensors.

What the mode cannot see, Python state that changes between calls (a counter kept by a module),
is the caller's to exclude; ``vmap`` already forbids reading values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import torch_private, tree

Tensor = torch.Tensor

#: Words in an operation's name that make it a random draw.
RANDOM = ("rand", "normal", "bernoulli", "uniform", "dropout", "multinomial", "exponential",
          "cauchy", "geometric", "poisson")


class _Slot:
    """A reference to the i-th tensor of a recording (an input, or an operation's output)."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


class _Refused(Exception):
    """The recording cannot stand for the call (the message says why)."""


def _refusal(func: Any) -> str | None:
    name = func.overloadpacket.__name__
    if name in ("_local_scalar_dense", "item", "is_nonzero", "equal"):
        return "reads a value into Python"
    if any(w in name for w in RANDOM):
        return "draws random numbers"
    return None


class Recording:
    """``fn(*inputs)``'s operations (see the module docstring); :meth:`run` calls them again on new
    inputs of the same structure, shapes, dtypes and ``requires_grad``."""

    def __init__(self, fn: Callable[..., Any], inputs: list[Any]) -> None:
        leaves = tree.leaves(inputs)
        self._n_inputs = len(leaves)
        self._like = tree.map(lambda _: None, inputs)   # the structure (its keys' order)
        slot = {id(t): i for i, t in enumerate(leaves)}
        keep: list[Tensor] = list(leaves)     # every tensor seen, so that no id() is reused
        ops: list[tuple[Any, list[Any], list[tuple[int, int]], list[tuple[int, list[Any]]],
                        dict[str, Any], Any]] = []
        used: set[int] = set()
        inputs_ptr = {t.data_ptr() for t in leaves if t.numel()}

        def encode(x: Any) -> Any:
            if isinstance(x, Tensor):
                if id(x) in slot:
                    used.add(slot[id(x)])
                    return _Slot(slot[id(x)])
                if x.numel() and x.data_ptr() in inputs_ptr:
                    raise _Refused("an input reached an operation as another object")
                keep.append(x)
                return x                          # a constant (a buffer, a captured tensor)
            if isinstance(x, (list, tuple)) and any(isinstance(v, Tensor) for v in x):
                return [encode(v) for v in x]
            return x

        def register(out: Any) -> Any:
            if isinstance(out, Tensor):
                keep.append(out)
                slot[id(out)] = len(slot)
                return slot[id(out)]
            if isinstance(out, (list, tuple)) and all(isinstance(o, Tensor) or o is None for o in out):
                return [None if o is None else register(o) for o in out]
            raise _Refused("an operation returned no tensors")

        pending: list[Any] = []   # the operation being run: its encoded arguments

        def before(func: Any, args: tuple, kwargs: dict) -> None:
            why = _refusal(func)
            if why is not None:
                raise _Refused(f"{func} {why}")
            if func._schema.is_mutable:
                for a, v in zip(func._schema.arguments, args):
                    if a.is_write and isinstance(v, Tensor) and (
                            id(v) not in slot or slot[id(v)] < self._n_inputs):
                        raise _Refused(f"{func} writes into an input or a constant")
            enc = [encode(a) for a in args]
            holes = [(j, a.i) for j, a in enumerate(enc) if isinstance(a, _Slot)]
            nested = [(j, a) for j, a in enumerate(enc)
                      if isinstance(a, list) and any(isinstance(v, _Slot) for v in a)]
            kw = {k: encode(v) for k, v in kwargs.items()}
            if any(isinstance(v, (_Slot, list)) for v in kw.values()):
                raise _Refused(f"{func} takes tensors by keyword")
            pending[:] = [enc, holes, nested, kw]

        def after(func: Any, args: tuple, kwargs: dict, out: Any) -> None:
            enc, holes, nested, kw = pending
            ops.append((func, enc, holes, nested, kw, register(out)))

        result = torch_private.observe(lambda: fn(*inputs), before, after)
        if len(used) < self._n_inputs:
            raise _Refused("an input was never seen by an operation")
        self._ops, self._out = _pruned(ops, register_output(result, slot), {
            i: t for t, i in ((t, slot.get(id(t))) for t in keep) if i is not None})
        self._size = len(slot)
        self.result = result     # the recorded call's own result, for the caller to take

    def run(self, *inputs: Any) -> Any:
        """The recorded operations on ``inputs`` (as the recorded ones: same structure and shapes)."""
        vals: list[Any] = tree.leaves(list(inputs), self._like) + [None] * (self._size - self._n_inputs)
        for func, enc, holes, nested, kw, out in self._ops:
            args = list(enc)
            for j, i in holes:
                args[j] = vals[i]
            for j, lst in nested:
                args[j] = [vals[v.i] if isinstance(v, _Slot) else v for v in lst]
            r = func(*args, **kw)
            if isinstance(out, int):
                vals[out] = r
            else:
                for i, v in zip(out, r):
                    if i is not None:
                        vals[i] = v
        return _build_output(self._out, vals)

    def __len__(self) -> int:
        return len(self._ops)


#: Operations that return their first argument's values unchanged when their result has its shape
#: and strides (a view of a tensor as itself), or when their scalar is 1 (x · 1, x / 1).
IDENTITY_VIEWS = ("view", "_unsafe_view", "reshape", "expand", "alias", "contiguous")
IDENTITY_SCALAR = ("mul", "div")


def _identity(func: Any, enc: list[Any], out: Any, tensors: dict[int, Tensor]) -> bool:
    """Whether an operation gives back its first (slot) argument's values as they are, so that its
    result can stand for it: autograd's backward of such an operation is the identity too."""
    if not (enc and isinstance(enc[0], _Slot) and isinstance(out, int) and not func._schema.is_mutable):
        return False
    name = func.overloadpacket.__name__
    src, dst = tensors.get(enc[0].i), tensors.get(out)
    if src is None or dst is None:
        return False
    same = (src.shape == dst.shape and src.stride() == dst.stride() and src.dtype == dst.dtype
            and src.storage_offset() == dst.storage_offset())
    if name in IDENTITY_VIEWS:
        return same
    return name in IDENTITY_SCALAR and same and len(enc) == 2 and type(enc[1]) in (int, float) \
        and enc[1] == 1


def _pruned(ops: list[Any], out: Any, tensors: dict[int, Tensor]) -> tuple[list[Any], Any]:
    """``ops`` without those whose results nothing uses (a tensor autograd saved, detached below
    it; an index tensor vmap made and no operation read) and without identities (:func:`_identity`,
    their users reading their argument instead); and the result's slots, through those identities."""
    alias: dict[int, int] = {}
    kept = []
    for func, enc, holes, nested, kw, res in ops:
        holes = [(j, alias.get(i, i)) for j, i in holes]
        enc = [_Slot(alias.get(a.i, a.i)) if isinstance(a, _Slot) else a for a in enc]
        nested = [(j, [_Slot(alias.get(v.i, v.i)) if isinstance(v, _Slot) else v for v in lst])
                  for j, lst in nested]
        if _identity(func, enc, res, tensors):
            alias[res] = enc[0].i
            continue
        kept.append((func, enc, holes, nested, kw, res))
    out = _remap(out, alias)
    needed = {s.i for s in _slots(out)}
    live = []
    for op in reversed(kept):
        func, enc, holes, nested, kw, res = op
        outs = [res] if isinstance(res, int) else [r for r in res if r is not None]
        if func._schema.is_mutable or any(o in needed for o in outs):
            live.append(op)
            needed.update(i for _, i in holes)
            needed.update(v.i for _, lst in nested for v in lst if isinstance(v, _Slot))
    return live[::-1], out


def _remap(spec: Any, alias: dict[int, int]) -> Any:
    if isinstance(spec, _Slot):
        return _Slot(alias.get(spec.i, spec.i))
    return type(spec)(_remap(s, alias) for s in spec)


def _slots(spec: Any) -> list[_Slot]:
    return [spec] if isinstance(spec, _Slot) else [s for x in spec for s in _slots(x)]


def register_output(result: Any, slot: dict[int, int]) -> Any:
    """The recorded call's result as slots (a tensor, or a tuple or list of tensors)."""
    if isinstance(result, Tensor):
        if id(result) not in slot:
            raise _Refused("the result was not computed by a recorded operation")
        return _Slot(slot[id(result)])
    if isinstance(result, (list, tuple)):
        return type(result)(register_output(r, slot) for r in result)
    raise _Refused("the call returned no tensors")


def _build_output(spec: Any, vals: list[Any]) -> Any:
    if isinstance(spec, _Slot):
        return vals[spec.i]
    return type(spec)(_build_output(s, vals) for s in spec)


def record(fn: Callable[..., Any], inputs: list[Any]) -> Recording | None:
    """A :class:`Recording` of ``fn(*inputs)``, or None where it cannot stand for the call (see the
    module docstring), or where recording failed in any other way (the caller's own call then
    raises the error, if it is the call's)."""
    try:
        return Recording(fn, inputs)
    except Exception:  # noqa: BLE001  (a replay is an optimisation: the ordinary call stands)
        return None
