"""Per-run random streams: distributions (scipy tests), independence, and the run-axis invariant."""

import numpy as np
import torch
from scipy import stats

from gamedyn.random import Streams, _mul32


def test_mul32_is_exact_modular_multiplication():
    x = torch.tensor([0, 1, 0xFFFFFFFF, 0x12345678, 0xDEADBEEF], dtype=torch.int64)
    for c in (0x7FEB352D, 0x846CA68B, 0xFFFFFFFF):
        expected = [(int(v) * c) % 2**32 for v in x]
        assert _mul32(x, c).tolist() == expected


def test_uniform_and_normal_pass_distribution_tests():
    s = Streams(torch.arange(50))
    u = s.uniform(4000).numpy()
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    assert 0 < u.min() and u.max() < 1
    z = s.normal(4000).numpy()
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01


def test_runs_draws_and_streams_are_uncorrelated():
    s = Streams(torch.arange(100))
    a, b = s.uniform(2000).numpy(), s.uniform(2000).numpy()
    c = s.fork(1).uniform(2000).numpy()
    for x, y in [(a, b), (a, c), (a[:-1], a[1:]), (a[:, :-1], a[:, 1:])]:
        assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.01


def test_a_runs_stream_depends_only_on_its_key():
    together = Streams(torch.tensor([3, 11, 3, 2**40 + 5]))
    alone = Streams(torch.tensor([2**40 + 5]))
    for _ in range(3):
        t, a = together.normal(7, 3), alone.normal(7, 3)
        assert torch.equal(t[3], a[0]) and torch.equal(t[0], t[2]) and not torch.equal(t[0], t[1])
