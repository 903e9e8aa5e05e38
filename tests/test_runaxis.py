"""The padded run axis (gamedyn.runaxis): a run's numbers are the same alone, in a batch that pads to
the same size, in a batch that pads to another size, and on one or two threads.

Sizes are chosen so that torch's vector loops would put some elements in their scalar tails without
the padding (odd minibatches, 3 coordinates per run): on AVX2 the unpadded code fails these tests
(checked against the previous commit), and under AVX-512 the same happens at other sizes."""

import numpy as np
import pytest
import torch

from gamedyn import make_study, runaxis
from gamedyn.batch import run_batch

pytestmark = pytest.mark.invariance

GAMES = [
    {"name": "gan1d", "gradient": "minibatch", "batch": 5, "discriminator": "learned",
     "diagnostics": "variance", "mc_samples": 203},
    {"name": "nce", "gradient": "minibatch", "batch": 7, "data": "mixture"},
    {"name": "dirac", "loss": "nsgan"},
    {"name": "bilinear", "dim": 3, "A": "random", "A_seed": 1},
    {"name": "mog_ring", "latent": 3, "gen_hidden": 5, "disc_hidden": 7, "batch": 9, "eval_samples": 11,
     "distance_samples": 13},
]


def test_padding_sizes():
    a = runaxis.run_align()
    assert a in (16, 32) or a >= 16
    for n in (1, 2, a - 1, a, a + 1, 5 * a + 3):
        p = runaxis.padded_size(n)
        assert p % a == 0 and n <= p < n + a
    assert runaxis.pad([1, 2, 3]) == [1, 2, 3] + [3] * (a - 3)
    assert runaxis.aligned_batch(a - 1) == a - 1 and runaxis.aligned_batch(3 * a + 5) == 3 * a
    big = runaxis.PARALLEL_MIN_RUNS // (2 * a) * 2 * a
    assert runaxis.threads_for(big, 8) == 2 and runaxis.threads_for(big + a, 8) == 1
    assert runaxis.threads_for(big, 1) == 1 and runaxis.threads_for(2 * a, 8) == 1


def test_stepping_restores_torch_threads():
    before = torch.get_num_threads()
    study = make_study({"name": "t", "game": "dirac", "rules": ["simultaneous"], "optimizer": {"lr": 0.1},
                        "steps": 3})
    run_batch(study.runs, threads=1, compile="off")
    assert torch.get_num_threads() == before


def _values(result, run_id):
    t = result.trajectories
    return t[t["run_id"].astype(str) == run_id]["value"].to_numpy()


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g["name"])
def test_a_run_is_the_same_alone_and_in_batches_of_other_padded_sizes(game, monkeypatch):
    monkeypatch.setattr(runaxis, "PARALLEL_MIN_RUNS", 1)  # two threads for small batches too
    a = runaxis.run_align()
    spec = {"name": "t", "game": game, "rules": ["simultaneous"],
            "optimizer": {"name": "adam", "lr": [0.01, 0.02, 0.05]},
            "seeds": (2 * a + 3 + 2) // 3, "steps": 4, "record_every": 2,
            "init": {"dist": "normal", "scale": 0.5}}
    runs = make_study(spec).runs
    assert len(runs) >= 2 * a + 3
    batches = {"two threads": runs[:2 * a], "one thread, larger pad": runs[:2 * a + 3]}
    assert runaxis.threads_for(runaxis.padded_size(2 * a), 2) == 2
    for k in (1, a + 2):
        alone = _values(run_batch([runs[k]], compile="off"), runs[k].run_id)
        assert len(alone) > 0
        for name, batch in batches.items():
            mine = _values(run_batch(batch, threads=2, compile="off"), runs[k].run_id)
            np.testing.assert_array_equal(mine, alone, err_msg=f"{game['name']}, run {k}, {name}")


def test_a_run_is_the_same_alone_and_in_a_batch_when_fused():
    """A batch and a lone run pad to the same size, so they share one compiled chunk."""
    a = runaxis.run_align()
    spec = {"name": "t", "game": {"name": "dirac", "loss": "nsgan"}, "rules": ["simultaneous"],
            "optimizer": {"lr": [0.05, 0.1, 0.2]}, "seeds": (a - 1) // 3, "steps": 40, "record_every": 10,
            "init": {"dist": "normal", "scale": 0.5}}
    runs = make_study(spec).runs
    together = run_batch(runs, compile="on")
    assert together.runs["stepping"].eq("compiled").all(), together.runs["stepping_note"].iloc[0]
    for k in (0, len(runs) - 1):
        alone = _values(run_batch([runs[k]], compile="on"), runs[k].run_id)
        np.testing.assert_array_equal(_values(together, runs[k].run_id), alone)
