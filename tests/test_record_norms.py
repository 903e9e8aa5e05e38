"""The recorder's norms (gradient norms, distance to the equilibrium) against numpy."""

from __future__ import annotations

import numpy as np
import torch

from gamedyn.record import _root_sum


def test_norm_of_one_coordinate_is_its_absolute_value_exactly_where_its_square_is_representable():
    """|x| is √(x²) bit for bit wherever x² neither overflows nor underflows (so eager and compiled
    records, and earlier results, are unchanged there), and the true norm where it does."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000) * 10.0 ** rng.uniform(-150, 150, 100_000)
    got = _root_sum([torch.from_numpy(x).reshape(-1, 1)]).numpy()
    assert (got == np.sqrt(x * x)).all()
    extreme = np.array([1e200, -1e-200, 3e-170])
    assert (_root_sum([torch.from_numpy(extreme).reshape(-1, 1)]).numpy() == np.abs(extreme)).all()
    assert not np.isfinite(np.sqrt(extreme * extreme)[0])  # where √(x²) was inf


def test_norm_of_several_blocks_is_the_root_sum_of_squares():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((50, 1))
    got = _root_sum([torch.from_numpy(a), torch.from_numpy(b)]).numpy()
    np.testing.assert_allclose(got, np.linalg.norm(np.hstack([a, b]), axis=1), rtol=1e-15)
