"""The run-axis alignment a batch's operations need (gamedyn.alignment), and batches padded to it.

The expected alignments are derived by hand from where ATen's vector loops put their scalar tails:
an elementwise loop over R·s contiguous elements (s per run) has a tail unless R·s is a multiple of
the block, so it needs R to be a multiple of block / gcd(block, s)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gamedyn import alignment, runaxis
from gamedyn.batch import alignment as batch_alignment
from gamedyn.batch import run_batch
from gamedyn.study import make_study
from tests.conftest import ROOT
from tests.test_module_gan import TINY

SIGMOID = {"module": str(ROOT / "tests" / "plugin_sigmoid_disc.py"), "class": "Discriminator",
           "kwargs": {"hidden": 8}}

P = alignment.PROBE_RUNS


def f32_block() -> int:
    return runaxis.block_bytes() // 4


def need(fn) -> int:
    return alignment.needed(fn)[0]


def x(*shape, dtype=torch.float32):
    return torch.rand(*shape, dtype=dtype) + 0.5


@pytest.mark.parametrize("s", [1, 3, 8, 10, 64, 96])
def test_a_rounding_elementwise_op_needs_whole_blocks_of_its_elements(s):
    b = f32_block()
    assert need(lambda: torch.exp(x(P, s))) == b // math.gcd(b, s)
    assert need(lambda: torch.exp(x(P, s, dtype=torch.float64))) == (b // 2) // math.gcd(b // 2, s)
    assert need(lambda: x(s, P).T.exp()) == b   # keeps the layout: the run axis innermost


def test_exact_ops_need_nothing_but_alpha_and_odd_powers_do():
    b = f32_block()
    a, c = x(P, 3), x(P, 3)
    for fn in (lambda: a + c, lambda: a * c, lambda: a / c, lambda: a.sqrt(), lambda: a ** 2,
               lambda: torch.where(a > 1, a, c), lambda: a.clamp_min(0.7), lambda: a.to(torch.float64)):
        assert need(fn) == 1
    assert need(lambda: torch.add(a, c, alpha=0.5)) == b
    assert need(lambda: a ** 3.5) == b


def test_tensors_the_runs_share_need_nothing():
    assert need(lambda: torch.exp(x(5, 3))) == 1


def test_reductions_within_a_run_need_nothing_across_runs_they_do():
    b = f32_block()
    assert need(lambda: x(P, 10).sum(1)) == 1
    assert need(lambda: x(P, 10).norm(dim=1)) == 1
    assert need(lambda: x(P, 1).sum(1)) == 1            # the sum of one element
    assert need(lambda: x(P, 1).norm(dim=1)) == b       # may vectorise across the runs
    assert need(lambda: x(10, P).sum(0)) == b           # the run axis innermost
    assert need(lambda: x(10, P, 2).sum(0)) == b // 2
    assert need(lambda: x(P, 10).sum()) == 1            # mixes runs: a backward pass's seed
    assert need(lambda: x(P, 10, 10).diagonal(0, -2, -1).sum(-1)) == 1
    assert need(lambda: x(P, 10).amax(0)) == 1 and need(lambda: x(10, P).amax(0)) == 1


def test_matrix_products_and_small_per_run_corrections_need_nothing():
    assert need(lambda: torch.bmm(x(P, 3, 5), x(P, 5, 7))) == 1
    assert need(lambda: runaxis.whole_blocks(lambda u, t: u ** t, x(P), x(P) * 10)) == 1
    assert need(lambda: runaxis.whole_blocks(torch.log, x(P, 10))) == 1


def test_whole_blocks_is_the_function_elementwise():
    u, t = x(7), x(7) * 10
    torch.testing.assert_close(runaxis.whole_blocks(lambda a, b: a ** b, u, t), u ** t)
    h = x(7, 10)
    torch.testing.assert_close(runaxis.whole_blocks(torch.log, h), h.log())


def tiny_runs(n: int, batch: int = 8, steps: int = 4, **game):
    spec = {"name": "t", "game": {"name": "module_gan", **TINY, "batch": batch, **game},
            "rules": ["simultaneous"], "optimizer": {"name": "adam", "lr": [1e-3, 3e-3], "beta1": 0.5},
            "steps": steps, "record_every": 2, "seeds": -(-n // 2), "dtype": "float32"}
    return make_study(spec).runs[:n]


def test_a_neural_batch_is_padded_to_what_its_losses_need():
    """TINY's minibatch of 8: the loss's log(1 + exp) over [R, 8] needs R in multiples of
    block/8; everything else in its step and record is wider or exact."""
    b = f32_block()
    runs = tiny_runs(8)
    assert batch_alignment(runs) == b // math.gcd(b, 8)
    assert batch_alignment(runs, compile="on") is None        # compiled kernels: the whole block
    assert batch_alignment(tiny_runs(8, batch=3)) is None     # softplus over [R, 3]: no gain
    assert batch_alignment(tiny_runs(32)) is None             # a multiple of the block already


@pytest.mark.invariance
def test_a_run_is_the_same_alone_and_in_batches_padded_to_the_derived_alignment():
    """Alone (padded to the alignment), in 8, 13 and 40 runs: four padded sizes, the last beyond a
    whole block. The discriminator's sigmoid over [R, 8] (4 real and 4 generated samples) rounds
    differently in a loop's tail: forcing the alignment to 1 makes this fail under AVX-512
    (checked; under AVX2 a lone run's 2 × 8 outputs are one whole block)."""
    runs = tiny_runs(40, batch=4, steps=10, discriminator=SIGMOID)
    align = batch_alignment(runs)
    assert align is not None and runaxis.padded_size(40, align) < runaxis.padded_size(40)

    def values(result, run_id):
        t = result.trajectories
        t = t[t["run_id"].astype(str) == run_id].sort_values(["step", "variable"])
        return t["value"].to_numpy()

    for k in (1, 6):
        alone = values(run_batch([runs[k]]), runs[k].run_id)
        assert len(alone) > 0
        for n in (8, 13, 40):
            together = run_batch(runs[:n])
            np.testing.assert_array_equal(values(together, runs[k].run_id), alone, err_msg=f"{n} runs")
    assert "aligned for the eager kernels" in together.runs["stepping_note"].iloc[0]


def test_a_convolution_over_the_run_axis_keeps_the_whole_block():
    """Under vmap a convolution with per-run weights is one grouped convolution with R groups,
    whose algorithm may depend on R: the whole block, as before."""
    w, x_ = torch.rand(P, 4, 2, 3, 3), torch.rand(P, 5, 2, 8, 8)
    conv = torch.func.vmap(lambda wi, xi: torch.nn.functional.conv2d(xi, wi))
    assert need(lambda: conv(w, x_)) == f32_block()


def test_the_probe_is_a_prime_near_the_batch_and_a_failing_probe_keeps_the_whole_block(monkeypatch):
    assert [alignment.probe_runs(n) for n in (1, 8, 12, 24, 37, 1000)] == [11, 11, 13, 29, 37, 37]
    from gamedyn import batch

    monkeypatch.setattr(batch, "_build", lambda *a, **k: (_ for _ in ()).throw(MemoryError("probe")))
    assert batch._needed(tiny_runs(8), "cpu") is None
