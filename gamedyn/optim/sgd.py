"""Stochastic gradient descent with (possibly negative) heavy-ball momentum."""

from __future__ import annotations

from typing import Any

import torch

from ..component import Param
from .base import OPTIMIZERS, Optimizer, Tensor, per_run


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Gradient descent with heavy-ball momentum β (PyTorch's form, dampening 0).

    v_{k+1} = β v_k + g_k,  p_{k+1} = p_k − η v_{k+1},  v_0 = 0,

    equivalently p_{k+1} = p_k − η g_k + β (p_k − p_{k−1}) with p_{−1} = p_0: the first step is a
    plain gradient step. β < 0 is the negative momentum of Gidel et al. (2019, arXiv 1807.04740);
    β = 0 is plain gradient descent. η and β may differ per run.
    """

    learning_rate = "lr"
    linearisable = True
    params = {
        "lr": Param(float, 0.1, "learning rate η", low=0.0, low_open=True, per_run=True),
        "momentum": Param(float, 0.0, "momentum β (negative allowed)", per_run=True),
    }

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        # β = 0 in every run: v_{k+1} = g_k, without the product 0 · v_k (the same numbers, up to
        # the sign of an exact zero, in two fewer operations per parameter and step)
        self._plain = isinstance(self.momentum, Tensor) and not bool(self.momentum.any())

    def init(self, params: dict[str, Tensor]) -> dict[str, Any]:
        return {"velocity": {k: torch.zeros_like(p) for k, p in params.items()}}

    def update(self, grads, state, params):
        velocity = {}
        new = {}
        for k, p in params.items():
            v = grads[k] if self._plain else per_run(self.momentum, p) * state["velocity"][k] + grads[k]
            velocity[k] = v
            new[k] = p - per_run(self.lr, p) * v
        return new, {"velocity": velocity}
