"""The per-player optimizer interface (shaped like optax: pure functions of explicit state)."""

from __future__ import annotations

from typing import Any

import torch

from ..component import Component, Registry

Tensor = torch.Tensor
OPTIMIZERS = Registry("optimizer")


def per_run(h: Tensor, like: Tensor) -> Tensor:
    """A per-run hyperparameter of shape ``[R]`` reshaped to broadcast against ``like`` ``[R, ...]``."""
    return h.reshape(h.shape + (1,) * (like.dim() - 1))


class Optimizer(Component):
    """How one player turns its gradient into a parameter update.

    ``init(params) -> state`` and ``update(grads, state, params) -> (new_params, new_state)`` act on
    one player's named tensors (leading run axis). Both are pure: the state is an explicit dict of
    tensors that a rule may keep, copy (extragradient's extrapolation) or differentiate through
    (the stability analysis), and ``update`` never mutates its inputs. Hyperparameters declared
    ``per_run`` arrive as tensors of shape ``[R]``; use :func:`per_run` to broadcast them.
    """

    def init(self, params: dict[str, Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def update(
        self, grads: dict[str, Tensor], state: dict[str, Any], params: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        raise NotImplementedError
