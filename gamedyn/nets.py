"""Batched neural players: R independent multilayer perceptrons stepped at once over the run axis.

A network's parameters are stacked over runs, ``w{i}`` of shape ``[R, fan_in, fan_out]`` and
``b{i}`` of shape ``[R, fan_out]``, and every layer is one batched matrix product
(``torch.baddbmm``): for inputs ``x`` ``[R, n, fan_in]``,

    h_{i+1} = φ(h_i W_i + b_i),  i = 0 … L−2,     y = h_{L−1} W_{L−1} + b_{L−1},   h_0 = s·x,

with φ the activation and s the input scale (Metz et al. 2017, App. A, scale the discriminator's
input by 1/4). Run r's network touches only row r of every tensor, so the gradient of a sum of
per-run losses is each run's own gradient and a run's result does not depend on its batch-mates.
(``torch.func.stack_module_state`` + ``vmap`` + ``functional_call`` computes the same thing;
``benchmarks/bench_mog.py`` measures both: on CPU the explicit ``baddbmm`` is at least as fast, with
no functorch layer in the autograd graph, which double-backward rules differentiate through.)

Initialisation is per run from ``numpy.random.default_rng([seed, salt])`` (``salt`` tells the
players apart), so a run's initial network depends on its seed only:

- ``orthogonal`` (Saxe, McClelland & Ganguli 2014, arXiv 1312.6120): W = gain·Q, Q from the QR
  decomposition of a standard normal [fan_out, fan_in] matrix (transposed when fan_out < fan_in),
  columns' signs fixed by diag(R) — the construction of ``torch.nn.init.orthogonal_``; biases 0.
  The unrolled-GAN setup uses gain 0.8 (Metz et al. 2017; ``locuslab/gradient_regularized_gan``).
- ``xavier_uniform`` / ``xavier_normal`` (Glorot & Bengio 2010): U(±gain·√(6/(fan_in+fan_out))) /
  N(0, gain²·2/(fan_in+fan_out)); biases 0.
- ``he_normal`` (He et al. 2015, arXiv 1502.01852): N(0, gain²·2/fan_in); biases 0.
- ``torch_default``: what ``nn.Linear`` does, W, b ~ U(±1/√fan_in) (gain ignored).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .costs import zeta

Tensor = torch.Tensor

#: Hidden activations φ. ``softplus`` is ζ(x) = log(1 + eˣ) computed as −log σ(−x)
#: (:func:`gamedyn.costs.zeta`): ``F.softplus`` is the identity past x = 20, so its derivative
#: there is exactly 1 instead of σ(x) and its second derivative 0; ζ's derivatives are exact at any
#: x and give the same bits whatever the batch (see :func:`gamedyn.costs.log_sigmoid`).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "tanh": torch.tanh,
    "elu": F.elu,
    "softplus": zeta,
}


class _Softplus(nn.Module):
    """ζ(x) = −log σ(−x) as a module (``nn.Softplus`` has the cut-off at 20, see :data:`ACTIVATIONS`)."""

    def forward(self, x: Tensor) -> Tensor:
        return zeta(x)


_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "elu": nn.ELU,
    "softplus": _Softplus,
}
INITS = ("orthogonal", "xavier_uniform", "xavier_normal", "he_normal", "torch_default")


def _orthogonal(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """A [fan_in, fan_out] matrix whose torch-layout transpose [fan_out, fan_in] has orthonormal
    rows or columns (``torch.nn.init.orthogonal_``'s construction, drawn from ``rng``)."""
    flat = rng.standard_normal((fan_out, fan_in))
    if fan_out < fan_in:
        flat = flat.T
    # torch's LAPACK: numpy's bundled OpenBLAS can take ~0.5 s for a 128² QR on a busy machine
    q, r = (t.numpy() for t in torch.linalg.qr(torch.from_numpy(np.ascontiguousarray(flat))))
    q = q * np.sign(np.diag(r))[None, :]
    if fan_out < fan_in:
        q = q.T
    return q.T  # [fan_in, fan_out]


def init_layer(rng: np.random.Generator, scheme: str, gain: float, fan_in: int, fan_out: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """One layer's (W [fan_in, fan_out], b [fan_out]) drawn from ``rng`` by ``scheme``."""
    if scheme == "orthogonal":
        return gain * _orthogonal(rng, fan_in, fan_out), np.zeros(fan_out)
    if scheme == "xavier_uniform":
        a = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, (fan_in, fan_out)), np.zeros(fan_out)
    if scheme == "xavier_normal":
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return std * rng.standard_normal((fan_in, fan_out)), np.zeros(fan_out)
    if scheme == "he_normal":
        return gain * math.sqrt(2.0 / fan_in) * rng.standard_normal((fan_in, fan_out)), np.zeros(fan_out)
    if scheme == "torch_default":
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out)
    raise ValueError(f"unknown init scheme {scheme!r}; accepted: {', '.join(INITS)}")


class _Scale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


@dataclasses.dataclass(frozen=True)
class MLP:
    """An MLP architecture: ``sizes = (in, hidden…, out)``; parameters live outside, stacked over runs.

    ``mlp(params, x)`` maps ``x`` [R, n, in] to [R, n, out] with ``params`` = {``w0``: [R, in, h₁],
    ``b0``: [R, h₁], …}. Linear output (no activation after the last layer).

    A layer with a single output unit (a discriminator's logit, a 1-D generator) is computed as
    Σ_j h_j W_j + b (an elementwise product summed over the last axis), and one with a single input
    (a 1-D discriminator) as the outer product h W + b, rather than by ``baddbmm``: for these BLAS
    takes matrix-vector paths (forward, or backward to the input) whose summation order depends on
    the number of runs in the batch, which would break the run-axis invariant at the level of
    rounding (≈1 ulp); the elementwise reductions are the same for every row whatever R.
    """

    sizes: tuple[int, ...]
    activation: str = "relu"
    input_scale: float = 1.0
    init: str = "orthogonal"
    gain: float = 1.0

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(s < 1 for s in self.sizes):
            raise ValueError(f"MLP sizes must be at least (in, out), all >= 1: got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; accepted: {', '.join(ACTIVATIONS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init scheme {self.init!r}; accepted: {', '.join(INITS)}")

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-run parameter shapes, in layer order: ``w0, b0, w1, b1, …``."""
        out: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            out[f"w{i}"] = (a, b)
            out[f"b{i}"] = (b,)
        return out

    def __call__(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        h = x * self.input_scale if self.input_scale != 1.0 else x
        last = self.n_layers - 1
        for i in range(self.n_layers):
            w, b = params[f"w{i}"], params[f"b{i}"]
            if w.shape[-1] == 1:     # a single output: mul-and-sum, see the class docstring
                h = (h * w.transpose(1, 2)).sum(-1, keepdim=True) + b.unsqueeze(1)
            elif w.shape[1] == 1:    # a single input: an outer product
                h = h * w + b.unsqueeze(1)
            else:
                h = torch.baddbmm(b.unsqueeze(1), h, w)
            if i < last:
                h = act(h)
        return h

    def init_params(self, seeds: Sequence[int], salt: int, dtype: torch.dtype = torch.float32,
                    device: str = "cpu") -> dict[str, Tensor]:
        """Each run's initial parameters [R, …], run r drawn from ``default_rng([seed_r, salt])``
        (layer by layer, W then b). Runs sharing a seed get the same network."""
        unique, index = np.unique(np.asarray(seeds, dtype=np.int64), return_inverse=True)
        per_seed = []
        for s in unique:
            rng = np.random.default_rng([int(s), int(salt)])
            layers = {}
            for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
                layers[f"w{i}"], layers[f"b{i}"] = init_layer(rng, self.init, self.gain, a, b)
            per_seed.append(layers)
        return {k: torch.as_tensor(np.stack([p[k] for p in per_seed])[index], dtype=dtype, device=device)
                for k in self.shapes()}

    def flops(self, n: int) -> int:
        """Floating-point operations of one forward pass on n inputs (2 per multiply-add)."""
        return 2 * n * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    # --- the equivalent torch.nn.Module, for tests and the sequential baseline -----------------

    def module(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` computing the same function for one run."""
        layers: list[nn.Module] = [_Scale(self.input_scale)] if self.input_scale != 1.0 else []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < self.n_layers - 1:
                layers.append(_MODULES[self.activation]())
        return nn.Sequential(*layers)

    def load_run(self, module: nn.Sequential, params: dict[str, Tensor], run: int) -> nn.Sequential:
        """Copy run ``run``'s parameters into ``module`` (from :meth:`module`); returns it."""
        linears = [m for m in module if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(linears):
                lin.weight.copy_(params[f"w{i}"][run].T)
                lin.bias.copy_(params[f"b{i}"][run])
        return module

    def stack_runs(self, modules: Sequence[nn.Sequential]) -> dict[str, Tensor]:
        """The stacked parameters of several modules (one per run): the inverse of :meth:`load_run`."""
        out: dict[str, list[Tensor]] = {k: [] for k in self.shapes()}
        for module in modules:
            linears = [m for m in module if isinstance(m, nn.Linear)]
            for i, lin in enumerate(linears):
                out[f"w{i}"].append(lin.weight.detach().T)
                out[f"b{i}"].append(lin.bias.detach())
        return {k: torch.stack(v) for k, v in out.items()}
