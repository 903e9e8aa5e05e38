"""``mog_ring``'s players written as a user writes networks: plain ``torch.nn.Module`` classes, for
``module_gan`` (``tests/test_module_equivalence.py``); with ``dropout`` > 0, the same players with an
``nn.Dropout`` after each hidden activation, and :class:`Keep`, a dropout layer alone.

They mirror :class:`gamedyn.nets.MLP` as :class:`gamedyn.games.mixture.MixtureGame` builds it:

- **layers**: ``nn.Linear`` layers ``sizes[0] → … → sizes[-1]`` with ReLU between them and a linear
  output; the discriminator multiplies its input by ``input_scale`` (¼ in the unrolled-GAN setup,
  Metz et al. 2017, App. A) before the first layer. ``MLP`` keeps W as [in, out] and computes
  h W + b with ``baddbmm`` (mul-and-sum for a single output unit); ``nn.Linear`` keeps Wᵀ [out, in]
  and computes h Wᵀ + b: the same function, summed in another order (see the test for what that
  costs: rounding only).
- **initialisation**: ``MLP.init_params`` draws run r's layers from
  ``numpy.random.default_rng([seed_r, salt])`` (salt 1 for the generator, 2 for the
  discriminator), layer by layer, W then b, by :func:`gamedyn.nets.init_layer`. ``module_gan``
  instead constructs run r's module after ``torch.manual_seed(torch_seed(seed_r, salt))`` with the
  same salts (:func:`gamedyn.modules.torch_seed`, a hash), so the constructor sees the run's seed
  only through ``torch.initial_seed()``. :func:`run_seed` inverts the hash by lookup over seeds
  below :data:`SEARCHED` (and salt 0: ``module_gan``'s own base module, built under seed 0), and the
  layers are then drawn exactly as ``MLP.init_params`` draws them. Everything here is on the user's
  side: ``module_gan`` is unchanged.

The parameters are created in float64 (``dtype=torch.float64``) and filled from numpy's float64
draws, so that ``module_gan``'s cast to the study's dtype rounds them as ``MLP.init_params``'s
``torch.as_tensor(…, dtype)`` does (a float32 ``nn.Linear`` would round them to float32 first).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from gamedyn.modules import torch_seed
from gamedyn.nets import init_layer

#: Seeds 0 … SEARCHED − 1 can be recovered from ``torch.initial_seed()`` (:func:`run_seed`).
SEARCHED = 1024


@functools.cache
def _inverse() -> dict[int, tuple[int, int]]:
    """torch_seed(seed, salt) → (seed, salt) for seeds below :data:`SEARCHED`, salts 0, 1, 2."""
    return {torch_seed(s, salt): (s, salt) for s in range(SEARCHED) for salt in (0, 1, 2)}


def run_seed() -> tuple[int, int]:
    """The (seed, salt) under which ``module_gan`` is constructing this module, from torch's global
    seed (``torch.manual_seed(torch_seed(seed, salt))`` just before the constructor)."""
    found = _inverse().get(torch.initial_seed())
    if found is None:
        raise RuntimeError(f"torch.initial_seed() = {torch.initial_seed()} is no torch_seed(seed, salt) "
                           f"with seed < {SEARCHED}: not constructed by module_gan for such a seed")
    return found


class RingMLP(nn.Module):
    """``gamedyn.nets.MLP(sizes, "relu", input_scale, init, gain)`` as an ``nn.Module``, initialised
    from ``default_rng([seed, salt])`` of the run being built (see the module docstring)."""

    def __init__(self, sizes: Sequence[int], input_scale: float = 1.0, init: str = "orthogonal",
                 gain: float = 0.8, dropout: float = 0.0) -> None:
        super().__init__()
        self.input_scale = float(input_scale)
        seed, salt = run_seed()
        rng = np.random.default_rng([seed, salt])
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(a, b, dtype=torch.float64)
            w, bias = init_layer(rng, init, gain, a, b)   # W [in, out], as MLP.init_params draws it
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                linear.bias.copy_(torch.from_numpy(bias))
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
                if dropout > 0:   # no layer at all for 0: the mirror of MLP stays exact
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.input_scale if self.input_scale != 1.0 else x)


class Generator(RingMLP):
    """z [n, latent] → points [n, dim]: ``mog_ring``'s generator (``gen_layers`` × ``gen_hidden``)."""

    def __init__(self, latent: int = 256, hidden: int = 128, layers: int = 2, dim: int = 2,
                 init: str = "orthogonal", gain: float = 0.8, dropout: float = 0.0) -> None:
        super().__init__((latent, *[hidden] * layers, dim), 1.0, init, gain, dropout)


class Discriminator(RingMLP):
    """points [n, dim] → one logit per point [n, 1]: ``mog_ring``'s discriminator, its input scaled
    by ``input_scale``."""

    def __init__(self, hidden: int = 128, layers: int = 1, dim: int = 2, input_scale: float = 0.25,
                 init: str = "orthogonal", gain: float = 0.8, dropout: float = 0.0) -> None:
        super().__init__((dim, *[hidden] * layers, 1), input_scale, init, gain, dropout)


class Keep(nn.Module):
    """``nn.Dropout(p)`` of its input times one parameter (a player needs one), 1 at
    initialisation: on inputs of ones it returns the dropout noise m / (1 − p) itself."""

    def __init__(self, p: float = 0.3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x * self.scale)
