"""Adam (Kingma & Ba 2015, arXiv 1412.6980), with bias correction and per-run hyperparameters."""

from __future__ import annotations

from typing import Any

import torch

from .. import runaxis, tree
from ..component import Param
from .base import OPTIMIZERS, Optimizer, Tensor


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
    analysis holds it fixed), ``exp_avg`` (m) and ``exp_avg_sq`` (v), each one [R, n] tensor of
    all the player's coordinates (in :func:`gamedyn.tree.ravel`'s order: a dozen operations per
    update, whatever the number of tensors). The update is
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
        flat = tree.ravel(params)
        return {
            "step": torch.zeros(flat.shape[0], dtype=torch.int64, device=flat.device),
            "exp_avg": torch.zeros_like(flat),
            "exp_avg_sq": torch.zeros_like(flat),
        }

    def update(self, grads, state, params):
        step = state["step"] + 1
        # the bias corrections 1 − β₁ᵗ and √(1 − β₂ᵗ), once per update: [R] each, computed with
        # every run in a whole vector block, so that pow rounds alike in any batch (runaxis)
        c1, c2 = runaxis.whole_blocks(
            lambda b1, b2, t: torch.stack([1 - b1**t, (1 - b2**t).sqrt()]),
            self.beta1, self.beta2, step.to(tree.first(params).dtype))
        g = tree.ravel(grads, like=params)   # [R, n]: all of the player's tensors at once
        b1, b2 = self.beta1[:, None], self.beta2[:, None]
        m = b1 * state["exp_avg"] + (1 - b1) * g
        v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        step_size = self.lr[:, None] / c1[:, None]
        denom = v.sqrt() / c2[:, None] + self.eps[:, None]
        delta = tree.unravel(step_size * m / denom, params)
        new = {k: p - delta[k] for k, p in params.items()}
        return new, {"step": step, "exp_avg": m, "exp_avg_sq": v}
