"""The per-player optimizer interface (shaped like optax: pure functions of explicit state)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..component import Component, Registry

Tensor = torch.Tensor
OPTIMIZERS = Registry("optimizer")


def per_run(h: Tensor, like: Tensor) -> Tensor:
    """A per-run hyperparameter of shape ``[R]`` reshaped to broadcast against ``like`` ``[R, ...]``."""
    if like.dim() == 1:  # a scalar per run (toy games): as it is, no reshape to dispatch
        return h
    return h.reshape(h.shape + (1,) * (like.dim() - 1))


class Optimizer(Component):
    """How one player turns its gradient into a parameter update.

    ``init(params) -> state`` and ``update(grads, state, params) -> (new_params, new_state)`` act on
    one player's named tensors (leading run axis). Both are pure: the state is an explicit dict of
    tensors that a rule may keep, copy (extragradient's extrapolation) or differentiate through
    (the stability analysis), and ``update`` never mutates its inputs. Hyperparameters declared
    ``per_run`` arrive as tensors of shape ``[R]``; use :func:`per_run` to broadcast them.

    **Capabilities** an optimizer declares (class attributes, checked by the rules and analyses
    that rely on them, never inferred from its name):

    - ``learning_rate``: the name of its step-size hyperparameter η (``"lr"``), or None if it has
      none. Rules that take η from the players' optimizers (``cgd`` with ``eta: 0``) need it; a
      study that lacks it is rejected when it is loaded.
    - ``linearisable``: its update is a fixed linear map of (gradient, state, parameters) with
      constant coefficients (plain or heavy-ball gradient descent), so that a rule using it has a
      linearisation at an equilibrium: :func:`gamedyn.stability.predict` analyses only rules whose
      optimizers all declare it (adaptive methods such as Adam and RMSProp do not: see
      :mod:`gamedyn.stability`).
    """

    learning_rate: ClassVar[str | None] = None
    linearisable: ClassVar[bool] = False

    def init(self, params: dict[str, Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def update(
        self, grads: dict[str, Tensor], state: dict[str, Any], params: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        raise NotImplementedError
