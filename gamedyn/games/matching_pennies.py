"""Matching pennies with mixed strategies through a sigmoid of one logit per player."""

from __future__ import annotations

import torch

from .base import GAMES, Params, Tensor
from .scalar import ScalarPair


@GAMES.register("matching_pennies")
class MatchingPennies(ScalarPair):
    """Matching pennies with mixed strategies σ(θ), zero-sum; mixed equilibrium at logits (0, 0).

    As in the notebook of Letcher et al. (2019, arXiv 1811.08469).

    Each player i plays heads with probability pᵢ = σ(θᵢ) (one logit each). With the payoff matrix
    M = [[1, −1], [−1, 1]] as player 1's *loss* and −M as player 2's (zero-sum)::

        L₁ = (p₁, 1 − p₁) M (p₂, 1 − p₂)ᵀ = (2p₁ − 1)(2p₂ − 1),    L₂ = −L₁

    Player 1 (``p1``, logit ``theta``) wants to mismatch, player 2 (``p2``, logit ``phi``) to
    match. The unique Nash equilibrium is the mixed one p₁ = p₂ = ½,
    logits (0, 0), where H = ∇ξ = [[0, ¼], [−¼, 0]]: simultaneous gradient play circles it
    (|1 ± iη/4| > 1: it spirals out). The papers' step size: α = 1.
    """

    coordinates = ("theta", "phi")

    def pair(self, theta: Tensor, phi: Tensor) -> tuple[Tensor, Tensor]:
        value = (2 * torch.sigmoid(theta) - 1) * (2 * torch.sigmoid(phi) - 1)
        return value, -value

    def equilibrium(self) -> Params:
        return self.zeros()
