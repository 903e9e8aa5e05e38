"""The bilinear game min_x max_y xᵀAy."""

from __future__ import annotations

import torch

from ..component import Param
from .base import GAMES, Game, Params, Tensor

#: Up to this dimension xᵀAy is summed elementwise (R·dim² products) rather than by a matrix product.
SMALL_DIM = 4


@GAMES.register("bilinear")
class Bilinear(Game):
    """Bilinear zero-sum game min_x max_y xᵀAy, equilibrium at x = y = 0.

    L(x, y) = xᵀAy with x, y ∈ R^dim; ``gen`` owns x and minimises L, ``disc`` owns y and maximises
    it (loss −L). The field is ξ = (Ay, −Aᵀx); continuous-time play conserves ‖x‖² + ‖y‖² and splits
    into one 2-D rotation per singular value of A. It is the example of Goodfellow (2014,
    arXiv 1412.6515, §4) showing that simultaneous gradient steps spiral away from the equilibrium.
    ``A`` is the identity, or (``random``) a standard Gaussian matrix drawn from ``A_seed``
    (invertible almost surely, so 0 is the only equilibrium).
    """

    params = {
        "dim": Param(int, 1, "dimension of x and of y", low=1),
        "A": Param(str, "identity", "the coupling matrix", choices=("identity", "random")),
        "A_seed": Param(int, 0, "seed of A when A is random"),
    }
    differentiable_gradients = True

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        if self.A == "identity":
            self.matrix = torch.eye(self.dim, dtype=dtype, device=device)
        else:
            gen = torch.Generator().manual_seed(self.A_seed)
            self.matrix = torch.randn(self.dim, self.dim, generator=gen, dtype=torch.float64)
            self.matrix = self.matrix.to(dtype=dtype, device=device)

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        return {"gen": {"x": (self.dim,)}, "disc": {"y": (self.dim,)}}

    def losses(self, params: Params) -> dict[str, Tensor]:
        x, y = params["gen"]["x"], params["disc"]["y"]
        if self.dim == 1:  # x·a·y: the sum below over one term, without its three operations
            value = (x * self.matrix * y)[:, 0]
        elif self.dim <= SMALL_DIM:  # elementwise: fuses into one loop when compiled (no BLAS call)
            value = (x[:, :, None] * self.matrix * y[:, None, :]).sum((1, 2))
        else:
            value = ((x @ self.matrix) * y).sum(-1)
        return {"gen": value, "disc": -value}

    def gradients(self, params: Params) -> Params:
        """∇_x L = Ay, ∇_y (−L) = −Aᵀx (differentiable in x and y)."""
        x, y = params["gen"]["x"], params["disc"]["y"]
        if self.dim == 1:  # a·y and x·a: the sums below over one term (the same numbers)
            ay, atx = self.matrix * y, x * self.matrix
        elif self.dim <= SMALL_DIM:
            ay, atx = (self.matrix * y[:, None, :]).sum(2), (x[:, :, None] * self.matrix).sum(1)
        else:
            ay, atx = y @ self.matrix.T, x @ self.matrix
        return {"gen": {"x": ay}, "disc": {"y": -atx}}

    def hessians(self, params: Params) -> dict[str, Tensor] | None:
        """In z = (x, y): L's Hessian is [[0, A], [Aᵀ, 0]] (the gen's loss), −that (the disc's), the
        same for every run; up to :data:`SMALL_DIM` (above it, autograd's products, which never
        form the R × (2·dim)² matrices)."""
        if self.dim > SMALL_DIM:
            return None
        zero = torch.zeros_like(self.matrix)
        h = torch.cat([torch.cat([zero, self.matrix], 1), torch.cat([self.matrix.T, zero], 1)], 0)
        h = h.expand(params["gen"]["x"].shape[0], -1, -1)
        return {"gen": h, "disc": -h}

    def equilibrium(self) -> Params:
        return self.zeros()
