"""The iterated prisoner's dilemma with memory-one policies and its exact discounted loss."""

from __future__ import annotations

import torch

from ..component import Param
from .base import GAMES, Game, Params, Tensor

#: Player 1's reward in the states CC, CD, DC, DD (first letter: player 1's move), the payoff matrix
#: [[−1, −3], [0, −2]] read row by row; player 2's is its transpose read the same way.
REWARD_1 = (-1.0, -3.0, 0.0, -2.0)
REWARD_2 = (-1.0, 0.0, -3.0, -2.0)


def solve_row(p: list[Tensor], a: list[list[Tensor]]) -> list[Tensor]:
    """The row vector x with x A = p, for A (``a[i][j]`` the entry (i, j), each a tensor ``[R]``)
    whose columns are strictly diagonally dominant, as A = I − γP is by rows for a stochastic P (so
    Aᵀ is by columns): Gaussian elimination on Aᵀ xᵀ = pᵀ without pivoting, which is stable for
    such matrices. Elementwise over the run axis (a handful of [R] operations per entry, no
    batched LAPACK call), so a run's result is the same in any batch."""
    n = len(p)
    m = [[a[j][i] for j in range(n)] + [p[i]] for i in range(n)]   # the augmented system Aᵀ | pᵀ
    for k in range(n):
        for i in range(k + 1, n):
            f = m[i][k] / m[k][k]
            m[i] = [m[i][j] - f * m[k][j] if j > k else m[i][j] for j in range(n + 1)]
    x: list[Tensor] = [p[0]] * n
    for i in reversed(range(n)):
        acc = m[i][n]
        for j in range(i + 1, n):
            acc = acc - m[i][j] * x[j]
        x[i] = acc / m[i][i]
    return x


@GAMES.register("ipd")
class IPD(Game):
    """The iterated prisoner's dilemma: 5 logits per player, exact discounted loss −p(I − γP)⁻¹r.

    With discount γ (Foerster, Chen, Al-Shedivat, Whiteson,
    Abbeel & Mordatch 2018, "Learning with Opponent-Learning Awareness", arXiv 1709.04326, §4.1;
    as in the notebook of Letcher et al. 2019, arXiv 1811.08469).

    Each player has 5 logits θᵢ: σ(θᵢ[0]) is its probability to cooperate in the first round and
    σ(θᵢ[1 + s]) after the state s ∈ (CC, CD, DC, DD) of the previous round. **States are named
    from player 1's side for both players** (first letter player 1's move), as in Letcher et al.'s
    notebook: player 2's logit after "CD" is its reply to (player 1 cooperated, player 2 defected).
    (Foerster et al.'s code indexes player 2's policy from its own side instead, swapping CD and DC;
    the dynamics are the same up to that relabelling of player 2's coordinates.)

    With p the distribution of the first state (pₛ the product of the two first-round
    probabilities), P the 4 × 4 state transition matrix (row s: the product of the two players'
    move probabilities after s) and rᵢ player i's rewards per state (player 1: CC −1, CD −3,
    DC 0, DD −2, the payoff matrix [[−1, −3], [0, −2]]; player 2: its transpose), the exact
    expected discounted loss is::

        Lᵢ = −Σₜ γᵗ p Pᵗ rᵢ = −p (I − γP)⁻¹ rᵢ

    computed per run by elimination (:func:`solve_row`). (1 − γ)·L is the average loss per round:
    1 for mutual cooperation, 2 for mutual defection. Player 1 is ``p1``, player 2 ``p2``, each with
    parameter ``logits``. The papers' setting: α = 1,
    θ ~ N(0, 1). No single equilibrium (:meth:`equilibrium` is None).
    """

    players = ("p1", "p2")
    params = {
        "gamma": Param(float, 0.96, "discount γ", low=0.0, high=1.0, high_open=True),
    }

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"p1": {"logits": (5,)}, "p2": {"logits": (5,)}}

    def losses(self, params: Params) -> dict[str, Tensor]:
        c1 = torch.sigmoid(params["p1"]["logits"])     # [R, 5] cooperation probabilities
        c2 = torch.sigmoid(params["p2"]["logits"])

        def joint(a: Tensor, b: Tensor) -> list[Tensor]:   # P(CC), P(CD), P(DC), P(DD)
            return [a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)]

        p = joint(c1[:, 0], c2[:, 0])
        rows = [joint(c1[:, 1 + s], c2[:, 1 + s]) for s in range(4)]
        a = [[(1.0 if i == j else 0.0) - self.gamma * rows[i][j] for j in range(4)]
             for i in range(4)]
        x = solve_row(p, a)                              # x = p (I − γP)⁻¹, the discounted visits
        loss_1 = -sum(xs * r for xs, r in zip(x, REWARD_1))
        loss_2 = -sum(xs * r for xs, r in zip(x, REWARD_2))
        return {"p1": loss_1, "p2": loss_2}
