"""Per-run random streams over the run axis, counter-based so that runs never share randomness.

Every run r has a key (its seed). The i-th number of the c-th draw of stream s is a hash of
(key_r, s, c, i) — computed for all runs at once with integer tensor operations, like JAX's
counter-based keys — so a run's noise depends only on its own seed and on the sequence of draws,
never on its batch-mates or the number of workers (the run-axis invariant). Runs with the same seed
see the same noise whatever their rule or learning rate: common random numbers, which sharpen
comparisons between rules.

The hash is Wellons' ``lowbias32`` integer mixer: a per-run prefix hash of (key, stream,
draw) is combined with a hash of the element index; it is computed in int64
tensors holding 32-bit values, with 16-bit split multiplications, so every operation is exact (no
signed overflow). Two 32-bit words make one 53-bit uniform in (0, 1); normals use Box–Muller.
Not cryptographic; statistically adequate for Monte Carlo in studies (see tests/test_random.py).

Fast draws (:meth:`Streams.fast_normal`, :meth:`Streams.fast_uniform`) serve games that need
millions of numbers per step (the latent noise of neural generators): one 32-bit word per number
(a 31-bit-constant mixer, so each multiplication is a single exact int64 product), the element-index
hash cached per size, and Box–Muller using both outputs. About 2.5× ``torch.randn`` on CPU, against
~15× for :meth:`Streams.normal`; the same invariant (a run's numbers depend only on its key, stream
and draw counter).
"""

from __future__ import annotations

import functools
import math

import torch

Tensor = torch.Tensor
_M32 = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """x·c mod 2³² for x in [0, 2³²) held in int64, without overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix(x: Tensor) -> Tensor:
    """lowbias32 (C. Wellons, 'Prospecting for hash functions', 2018)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_words(*words: Tensor | int) -> Tensor:
    """A 32-bit hash of a sequence of 32-bit words (tensors broadcast together)."""
    h = torch.as_tensor(0x9E3779B9, dtype=torch.int64)
    for w in words:
        w = torch.as_tensor(w, dtype=torch.int64) & _M32
        h = _mix(h ^ _mix(w + 0x632BE5AB))
    return h


def _mix31(x: Tensor) -> Tensor:
    """A lowbias32-shaped mixer whose multipliers are < 2³¹, so x·c < 2⁶³ is exact in int64 and
    one product plus a mask gives x·c mod 2³² (constants 0x7FEB352D, lowbias32's first, and
    0x5851F42D). Its inputs are already well mixed (see :func:`_index_hash`)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x5851F42D) & _M32
    return x ^ (x >> 16)


@functools.lru_cache(maxsize=64)
def _index_hash(size: int, device: str) -> Tensor:
    """lowbias32 twice of the element indices 0…size−1 (the same for every run and draw: cached)."""
    idx = torch.arange(size, dtype=torch.int64, device=device)
    return _mix(_mix(idx + 0x632BE5AB) ^ 0x1B873593)


class Streams:
    """Random numbers for R runs: ``uniform(*shape)`` and ``normal(*shape)`` return [R, *shape].

    ``keys`` [R] are the runs' seeds (int64). Each call advances the draw counter; ``fork(s)`` gives
    an independent stream (e.g. the recorder's evaluation samples, apart from the training ones).
    """

    def __init__(self, keys: Tensor, stream: int = 0, device: str = "cpu") -> None:
        self.keys = torch.as_tensor(keys, dtype=torch.int64, device=device)
        self.stream, self.device, self.counter = stream, device, 0

    def fork(self, stream: int) -> Streams:
        return Streams(self.keys, stream, self.device)

    def _words(self, n: int, shape: tuple[int, ...]) -> list[Tensor]:
        c = self.counter
        self.counter += 1
        size = math.prod(shape)
        k = self.keys
        prefix = hash_words(k & _M32, (k >> 32) & _M32, self.stream, c)[:, None]     # [R, 1]
        idx = torch.arange(size * n, dtype=torch.int64, device=self.device).reshape(n, size)
        inner = _mix(_mix(idx + 0x632BE5AB) ^ 0x5851F42D)                            # [n, size]
        return [_mix(prefix ^ inner[j][None, :]) for j in range(n)]

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """Uniform on the open interval (0, 1), 53 random bits each."""
        a, b = self._words(2, shape)
        u = ((a >> 5).to(torch.float64) * 67108864.0 + (b >> 6).to(torch.float64) + 0.5) / 9007199254740992.0
        return u.to(dtype).reshape((len(self.keys), *shape))

    def normal(self, *shape: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """Standard normal (Box–Muller on two uniforms)."""
        u1, u2 = self.uniform(*shape), self.uniform(*shape)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return z.to(dtype)

    def _words32(self, size: int) -> Tensor:
        """[R, size] 32-bit words, one draw c: w_i = mix31(p_c ⊕ h2(i)), the per-run prefix
        p_c = mix(h(key, stream, 0xFA57) ⊕ mix(c + 0x632BE5AB)) (h cached per stream)."""
        c = self.counter
        self.counter += 1
        base = getattr(self, "_base32", None)
        if base is None:
            k = self.keys
            base = self._base32 = hash_words(k & _M32, (k >> 32) & _M32, self.stream, 0xFA57)
        prefix = _mix(base ^ _mix(torch.tensor((c + 0x632BE5AB) & _M32, dtype=torch.int64)))[:, None]
        return _mix31(prefix ^ _index_hash(size, str(self.device))[None, :])

    def fast_uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform on (0, 1] from one 32-bit word each: u = (w + ½)/2³² computed in ``dtype``
        (in float32 the largest words round to 1). For minibatch indices and the like."""
        w = self._words32(math.prod(shape))
        return ((w.to(dtype) + 0.5) * 2.0**-32).reshape((len(self.keys), *shape))

    def fast_normal(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal, Box–Muller with both outputs: for n numbers, 2⌈n/2⌉ words give uniforms
        u₁ (first half), u₂ (second half); z = √(−2 log u₁)·(cos 2πu₂ ‖ sin 2πu₂), truncated to n.
        u₁ ≥ 2⁻³³ bounds |z| ≤ 6.8 (a tail mass of 10⁻¹¹, immaterial for minibatch noise)."""
        n = math.prod(shape)
        m = (n + 1) // 2
        u = (self._words32(2 * m).to(dtype) + 0.5) * 2.0**-32
        r = torch.sqrt(-2.0 * torch.log(u[:, :m]))
        theta = (2.0 * math.pi) * u[:, m:]
        z = torch.cat([r * torch.cos(theta), r * torch.sin(theta)], 1)[:, :n]
        return z.reshape((len(self.keys), *shape))
