"""Adam (Kingma & Ba 2015, arXiv 1412.6980), with bias correction and per-run hyperparameters."""

from __future__ import annotations

from typing import Any

import torch

from .. import tree
from ..component import Param
from .base import OPTIMIZERS, Optimizer, Tensor, per_run


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, arXiv 1412.6980, Algorithm 1), with bias correction.

    With gradient g_t at step t = 1, 2, … and m_0 = v_0 = 0::

        m_t = β₁ m_{t−1} + (1 − β₁) g_t
        v_t = β₂ v_{t−1} + (1 − β₂) g_t²
        p_t = p_{t−1} − η m̂_t / (√v̂_t + ε),   m̂_t = m_t / (1 − β₁ᵗ),  v̂_t = v_t / (1 − β₂ᵗ)

    computed as PyTorch's ``torch.optim.Adam`` does, p_t = p_{t−1} − (η / (1 − β₁ᵗ)) · m_t /
    (√v_t / √(1 − β₂ᵗ) + ε), which is the same map. η, β₁, β₂ and ε may differ per run.

    State: ``step`` (the number of updates taken, an int64 tensor [R]: integer, so the stability
    analysis holds it fixed), ``exp_avg`` (m) and ``exp_avg_sq`` (v), per parameter. The update is
    pure and differentiable in grads, params and state — except where v = 0 (√ has an infinite
    derivative at 0, as in PyTorch), e.g. at a point of zero gradient from a fresh state.
    """

    learning_rate = "lr"
    params = {
        "lr": Param(float, 1e-3, "learning rate η", low=0.0, low_open=True, per_run=True),
        "beta1": Param(float, 0.9, "decay of the first-moment average β₁",
                       low=0.0, high=1.0, high_open=True, per_run=True),
        "beta2": Param(float, 0.999, "decay of the second-moment average β₂",
                       low=0.0, high=1.0, high_open=True, per_run=True),
        "eps": Param(float, 1e-8, "ε added to √v̂", low=0.0, per_run=True),
    }

    def init(self, params: dict[str, Tensor]) -> dict[str, Any]:
        like = tree.first(params)
        return {
            "step": torch.zeros(like.shape[0], dtype=torch.int64, device=like.device),
            "exp_avg": {k: torch.zeros_like(p) for k, p in params.items()},
            "exp_avg_sq": {k: torch.zeros_like(p) for k, p in params.items()},
        }

    def update(self, grads, state, params):
        step = state["step"] + 1
        new, exp_avg, exp_avg_sq = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            t = per_run(step, p).to(p.dtype)
            b1, b2 = per_run(self.beta1, p), per_run(self.beta2, p)
            m = b1 * state["exp_avg"][k] + (1 - b1) * g
            v = b2 * state["exp_avg_sq"][k] + (1 - b2) * g * g
            step_size = per_run(self.lr, p) / (1 - b1**t)
            denom = v.sqrt() / (1 - b2**t).sqrt() + per_run(self.eps, p)
            new[k] = p - step_size * m / denom
            exp_avg[k], exp_avg_sq[k] = m, v
        return new, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
