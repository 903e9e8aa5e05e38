"""RMSProp (Tieleman & Hinton 2012), in PyTorch's formulation, with per-run hyperparameters."""

from __future__ import annotations

from typing import Any

import torch

from ..component import Param
from .base import OPTIMIZERS, Optimizer, Tensor, per_run


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012) as torch.optim.RMSprop computes it, optional momentum.

    Tieleman & Hinton, COURSERA *Neural Networks for Machine Learning*, lecture 6.5 (2012); the
    formulation of ``torch.optim.RMSprop`` (no weight decay). With s_0 = 0, b_0 = 0 (and ḡ_0 = 0)::

        s_t = α s_{t−1} + (1 − α) g_t²
        ḡ_t = α ḡ_{t−1} + (1 − α) g_t                 (centered only)
        d_t = √(s_t − ḡ_t²) + ε  (centered)   or   √s_t + ε
        b_t = μ b_{t−1} + g_t / d_t
        p_t = p_{t−1} − η b_t

    μ = 0 (the default) is plain RMSProp p_t = p_{t−1} − η g_t / d_t; μ > 0 is PyTorch's momentum
    on the normalised step. Unlike PyTorch, μ < 0 is accepted (negative momentum, as for ``sgd``).
    There is no bias correction (PyTorch has none either): s starts at 0, so the first steps are
    larger by up to 1/√(1 − α). η, α, ε and μ may differ per run; ``centered`` is structural.

    State: ``square_avg`` (s), ``momentum_buffer`` (b), and ``grad_avg`` (ḡ, centered only), per
    parameter. The update is pure and differentiable except where s_t − ḡ_t² = 0 (√ at 0).
    """

    learning_rate = "lr"
    params = {
        "lr": Param(float, 1e-2, "learning rate η", low=0.0, low_open=True, per_run=True),
        "alpha": Param(float, 0.99, "decay of the squared-gradient average α",
                       low=0.0, high=1.0, high_open=True, per_run=True),
        "eps": Param(float, 1e-8, "ε added to the root mean square", low=0.0, per_run=True),
        "momentum": Param(float, 0.0, "momentum μ on the normalised step", per_run=True),
        "centered": Param(bool, False, "normalise by the gradient's estimated variance instead"),
    }

    def init(self, params: dict[str, Tensor]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "square_avg": {k: torch.zeros_like(p) for k, p in params.items()},
            "momentum_buffer": {k: torch.zeros_like(p) for k, p in params.items()},
        }
        if self.centered:
            state["grad_avg"] = {k: torch.zeros_like(p) for k, p in params.items()}
        return state

    def update(self, grads, state, params):
        new: dict[str, Tensor] = {}
        out: dict[str, Any] = {"square_avg": {}, "momentum_buffer": {}}
        if self.centered:
            out["grad_avg"] = {}
        for k, p in params.items():
            g = grads[k]
            a = per_run(self.alpha, p)
            s = a * state["square_avg"][k] + (1 - a) * g * g
            out["square_avg"][k] = s
            if self.centered:
                gbar = a * state["grad_avg"][k] + (1 - a) * g
                out["grad_avg"][k] = gbar
                s = s - gbar * gbar
            d = s.sqrt() + per_run(self.eps, p)
            b = per_run(self.momentum, p) * state["momentum_buffer"][k] + g / d
            out["momentum_buffer"][k] = b
            new[k] = p - per_run(self.lr, p) * b
        return new, out
