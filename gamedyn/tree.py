"""Trees of tensors with the run axis leading: the plumbing every rule, optimizer and analysis shares.

A *tree* is a nest of dicts, lists and tuples whose leaves are tensors ``[R, ...]`` (the run axis
first) or other values (Python numbers, strings, tensors without the run axis). The players'
parameters ``{player: {name: Tensor[R, ...]}}``, their gradients and Hessian-vector products, and
the rules' and optimizers' states are trees. Leaves are visited depth first, dicts in their keys'
order (insertion order), lists and tuples by position.

The operations here act on all R runs at once (the run axis is never looped over): per-run inner
products and norms give ``[R]`` tensors, :func:`where` picks per run between two trees, and
:func:`ravel` / :func:`unravel` turn a tree into one ``[R, n]`` matrix (the n coordinates of each
run) and back. The functions are pure: inputs are never modified.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

Tensor = torch.Tensor
Tree = Any
#: Where a leaf sits in a tree: the keys (dicts) and positions (lists, tuples) on the way to it.
Path = tuple[Any, ...]


def _is_node(x: Any) -> bool:
    return _kind(x) != _LEAF


_LEAF, _MAP, _SEQ = 0, 1, 2


def _kind(x: Any) -> int:
    """Whether ``x`` is a leaf, a mapping or a list or tuple: told from its type for the usual
    ones (``isinstance`` with an abstract class costs ~0.2 µs a node: a third of the time to
    flatten a rule's state, which compiled stepping does at every check)."""
    t = type(x)
    if t is torch.Tensor:
        return _LEAF
    if t is dict or isinstance(x, Mapping):
        return _MAP
    return _SEQ if t is list or t is tuple or isinstance(x, list | tuple) else _LEAF


def map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:  # noqa: A001  (as jax.tree.map)
    """``fn`` applied to every leaf of ``tree`` (and the leaves at the same places of ``rest``, trees
    with at least ``tree``'s keys), in a tree of ``tree``'s structure."""
    kind = _kind(tree)
    if kind == _MAP:
        return {k: map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if kind == _SEQ:
        return type(tree)(map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree))
    return fn(tree, *rest)


def paths(tree: Tree, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf with its path, depth first."""
    kind = _kind(tree)
    if kind == _MAP:
        for k, v in tree.items():
            yield from paths(v, prefix + (k,))
    elif kind == _SEQ:
        for i, v in enumerate(tree):
            yield from paths(v, prefix + (i,))
    else:
        yield prefix, tree


def get(tree: Tree, path: Path) -> Any:
    """The subtree (or leaf) at ``path``."""
    for key in path:
        tree = tree[key]
    return tree


def leaves(tree: Tree, like: Tree | None = None) -> list[Any]:
    """The leaves of ``tree``, depth first in the order of ``like``'s keys (default ``tree``'s own):
    a step may build its dicts in another order than it was given them, and the leaves of its
    output must line up with those of its input."""
    out: list[Any] = []

    def walk(node: Any, template: Any) -> None:
        kind = _kind(template)
        if kind == _MAP:
            for k, t in template.items():
                walk(node[k], t)
        elif kind == _SEQ:
            for v, t in zip(node, template):
                walk(v, t)
        else:
            out.append(node)

    walk(tree, tree if like is None else like)
    return out


def unflatten(like: Tree, values: Iterable[Any]) -> Tree:
    """A tree of ``like``'s structure with ``values`` as its leaves, in the order of
    :func:`leaves` (its inverse)."""
    it = iter(values)

    def build(template: Any) -> Any:
        kind = _kind(template)
        if kind == _MAP:
            return {k: build(t) for k, t in template.items()}
        if kind == _SEQ:
            return type(template)(build(t) for t in template)
        return next(it)

    return build(like)


def first(tree: Tree) -> Tensor:
    """The first tensor leaf (its run count, dtype and device serve to make new tensors)."""
    for _, leaf in paths(tree):
        if isinstance(leaf, Tensor):
            return leaf
    raise ValueError("the tree holds no tensor")


def n_runs(tree: Tree) -> int:
    """R, the length of the run axis, from the first tensor leaf."""
    return first(tree).shape[0]


def _total(terms: Iterable[Tensor]) -> Tensor:
    """The sum of ``terms``, from the first (no Python 0 to start from)."""
    return functools.reduce(operator.add, terms)


def vdot(a: Tree, b: Tree) -> Tensor:
    """Per-run inner product ⟨a, b⟩, shape ``[R]``, of two trees of the same structure (``b`` may
    have more keys; a tensor ``[R, ...]`` is a tree of one leaf)."""
    return _total((x * y).reshape(x.shape[0], -1).sum(1) for x, y in zip(leaves(a), leaves(b, a)))


def norm(a: Tree) -> Tensor:
    """Per-run Euclidean norm ‖a‖, shape ``[R]``, of all of ``a``'s tensors together."""
    return torch.sqrt(_total((x.reshape(x.shape[0], -1) ** 2).sum(1) for x in leaves(a)))


def where(mask: Tensor, new: Tree, old: Tree) -> Tree:
    """Per run, ``new`` where ``mask`` ``[R]`` is true and ``old`` elsewhere, over two trees of the
    same structure (parameters, optimizer state). A leaf without the run axis must be the same
    object in both (it cannot be chosen per run): TypeError otherwise."""
    def pick(x: Any, y: Any) -> Any:
        if isinstance(x, Tensor) and x.dim() >= 1 and x.shape[0] == mask.shape[0]:
            return torch.where(mask.reshape(mask.shape + (1,) * (x.dim() - 1)), x, y)
        if x is y:
            return x
        raise TypeError(f"a tree leaf without the run axis cannot be chosen per run "
                        f"({type(x).__name__})")

    return map(pick, new, old)


def detach(tree: Tree) -> Tree:
    """The tree with its tensors cut from the autograd graph (other leaves as they are)."""
    return map(lambda x: x.detach() if isinstance(x, Tensor) else x, tree)


def zeros_like(tree: Tree, requires_grad: bool = False) -> Tree:
    """A tree of zero tensors shaped like ``tree``'s."""
    return map(lambda x: torch.zeros_like(x, requires_grad=requires_grad), tree)


def ravel(tree: Tree, like: Tree | None = None) -> Tensor:
    """The tensors of ``tree`` concatenated per run: ``[R, n]``, n the coordinates of one run (each
    leaf ``[R, ...]`` flattened in row-major order, leaves in :func:`leaves` order, ``like``'s keys'
    when given)."""
    return torch.cat([x.reshape(x.shape[0], -1) for x in leaves(tree, like)], 1)


def split(flat: Tensor, shapes: Iterable[tuple[int, ...]]) -> list[Tensor]:
    """``flat`` ``[R, n]`` cut into consecutive blocks of the per-run ``shapes`` (views of it)."""
    out, i = [], 0
    for shape in shapes:
        size = 1
        for s in shape:
            size *= s
        out.append(flat[:, i:i + size].reshape(flat.shape[0], *shape))
        i += size
    return out


def unravel(flat: Tensor, like: Tree) -> Tree:
    """The inverse of :func:`ravel`: a tree of ``like``'s structure and shapes, its leaves views of
    ``flat`` ``[R, n]`` (so gradients flow back to it)."""
    return unflatten(like, split(flat, [x.shape[1:] for x in leaves(like)]))


def grad(output: Tensor, wrt: Tree, create_graph: bool = False,
         retain_graph: bool | None = None) -> Tree:
    """∂ ``output`` / ∂ ``wrt`` (a scalar ``output``), as a tree of ``wrt``'s structure, with zeros
    where ``output`` does not depend on a tensor."""
    xs = leaves(wrt)
    gs = torch.autograd.grad(output, xs, create_graph=create_graph, retain_graph=retain_graph,
                             allow_unused=True)
    return unflatten(wrt, [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)])
