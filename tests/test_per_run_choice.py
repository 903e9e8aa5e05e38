"""A per-run choice (the Dirac-GAN's loss) lets runs of different losses share a batch: each run's
numbers are bit for bit those of a batch of its own loss (gamedyn.component.Choice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import tree
from gamedyn.batch import run_batch
from gamedyn.component import Choice
from gamedyn.games import GAMES
from gamedyn.study import make_study

pytestmark = pytest.mark.usefixtures("one_thread")

LOSSES = ["gan", "nsgan", "wgan"]
TIMING = ["wall_time", "compile_time", "batch_id", "batch_size"]


def _study(loss, rule, regularizer="none"):
    return make_study({"name": "c", "game": {"name": "dirac", "loss": loss}, "rules": [rule],
                       "regularizer": regularizer, "optimizer": {"name": "sgd", "lr": [0.05, 0.3]},
                       "init": {"dist": "normal", "scale": 1.0}, "seeds": 2, "steps": 60,
                       "record_every": 3})


@pytest.mark.parametrize("rule,regularizer", [
    ("simultaneous", "none"),                          # closed-form fields
    ({"name": "sga", "lam": 1.0}, "none"),             # Hessian-vector products
    ({"name": "alternating", "first": "gen"}, {"name": "r1", "gamma": 1.0}),  # autograd losses
    ("cgd", "none"),
])
def test_runs_of_mixed_losses_equal_runs_of_one_loss(rule, regularizer):
    _assert_as_alone(_study(LOSSES, rule, regularizer),  # the three losses share one batch
                     [_study(loss, rule, regularizer) for loss in LOSSES])


def _assert_as_alone(mixed, singles):
    """``mixed`` is one batch, and each study of ``singles`` one batch whose runs are among it:
    every run's columns (its own study's; timing aside) and trajectory are bit for bit the same."""
    (batch,) = mixed.batches()
    together = run_batch(batch, mixed.thresholds, compile="off")
    for single in singles:
        (alone_batch,) = single.batches()
        alone = run_batch(alone_batch, single.thresholds, compile="off")
        ids = list(alone.runs["run_id"])
        assert set(ids) <= set(together.runs["run_id"])   # the same runs (their ids)
        mine = together.runs.set_index("run_id").loc[ids].reset_index()[alone.runs.columns]
        pd.testing.assert_frame_equal(mine.drop(columns=TIMING),
                                      alone.runs.drop(columns=TIMING), check_dtype=False)
        t = together.trajectories[together.trajectories["run_id"].isin(ids)]
        np.testing.assert_array_equal(t["value"].to_numpy(), alone.trajectories["value"].to_numpy())


def test_a_choice_is_a_string_when_all_runs_agree_and_gradients_match_autograd():
    assert Choice.of(["gan", "gan"]) == "gan"
    choice = Choice.of(["wgan", "gan", "nsgan", "gan"])
    assert choice.names == ("wgan", "gan", "nsgan") and choice.index.tolist() == [0, 1, 2, 1]
    game = GAMES.get("dirac").build([{"loss": v} for v in ["wgan", "gan", "nsgan", "gan"]],
                                    torch.float64)
    theta = torch.tensor([0.3, -1.2, 2.0, 40.0], dtype=torch.float64, requires_grad=True)
    psi = torch.tensor([-0.7, 0.5, 1.5, -30.0], dtype=torch.float64, requires_grad=True)
    params = {"gen": {"theta": theta}, "disc": {"psi": psi}}
    losses = game.losses(params)
    (g_theta,) = torch.autograd.grad(losses["gen"].sum(), theta, retain_graph=True)
    (g_psi,) = torch.autograd.grad(losses["disc"].sum(), psi)
    closed = game.gradients(params)
    torch.testing.assert_close(closed["gen"]["theta"], g_theta, rtol=1e-12, atol=0)
    torch.testing.assert_close(closed["disc"]["psi"], g_psi, rtol=1e-12, atol=0)
    # each run's losses are those of its own loss's game
    for r, loss in enumerate(["wgan", "gan", "nsgan", "gan"]):
        own = GAMES.get("dirac").build([{"loss": loss}], torch.float64)
        one = own.losses({"gen": {"theta": theta[r:r + 1]}, "disc": {"psi": psi[r:r + 1]}})
        assert one["gen"].item() == losses["gen"][r].item()
        assert one["disc"].item() == losses["disc"][r].item()


REGULARIZERS_CHOSEN = ["none", {"name": "r1", "gamma": [0.5, 1.0]}, {"name": "r2", "gamma": 1.0}]


@pytest.mark.parametrize("rule", [
    "simultaneous", {"name": "sga", "lam": 1.0}, "cgd", {"name": "unrolled", "k": 2},
    {"name": "best_response", "max_inner": 4}, {"name": "alternating", "disc_steps": 2}])
def test_runs_of_mixed_regularizers_equal_runs_of_one_regularizer(rule):
    """none, R1 and R2 runs share one batch on the Dirac-GAN (its penalties' derivatives are in
    closed form), every run's numbers bit for bit those of a batch of its own regularizer, the
    unrolled rule's autograd path (through the look-ahead) included."""
    _assert_as_alone(_study(LOSSES, rule, REGULARIZERS_CHOSEN),
                     [_study(LOSSES, rule, regularizer) for regularizer in REGULARIZERS_CHOSEN])


def test_regularizers_share_batches_only_where_the_penalties_have_closed_forms():
    dirac = _study(LOSSES, "simultaneous", REGULARIZERS_CHOSEN)
    assert len(dirac.batches()) == 1
    spec = {"name": "c", "game": {"name": "gan1d", "discriminator": "learned"}, "rules": ["simultaneous"],
            "regularizer": REGULARIZERS_CHOSEN, "optimizer": {"name": "sgd"}, "steps": 5}
    assert len(make_study(spec).batches()) == 3   # autograd penalties: a none run stays cheap



def test_mixed_penalties_and_their_hessians_trace_without_in_place_writes():
    """What fusion needs of a second-order step on a mixed none/R1/R2 batch (SGA: Jv and Jᵀv from
    the closed-form Hessians with the penalties' padded in): a trace with no in-place operation,
    which would send the batch back to eager stepping."""
    from gamedyn import regularizers, torch_private
    from gamedyn.rules import Context

    configs = [{"name": "none"}, {"name": "r1", "gamma": 0.5}, {"name": "r2", "gamma": 1.0}] * 11
    game = GAMES.get("dirac").build([{"loss": v} for v in LOSSES * 11], torch.float64)
    ctx = Context(game, {}, regularizer=regularizers.build(configs, type(game), torch.float64, "cpu"))
    params = {"gen": {"theta": torch.linspace(-2, 2, 33, dtype=torch.float64)},
              "disc": {"psi": torch.linspace(1, -1, 33, dtype=torch.float64)}}

    def second_order(theta, psi):
        z = {"gen": {"theta": theta}, "disc": {"psi": psi}}
        return tree.leaves((ctx.field_jvp(z, z), ctx.field_vjp(z, z), ctx.grad(z)))

    gm = torch_private.make_fx(second_order, [params["gen"]["theta"], params["disc"]["psi"]])
    assert not [n for n in gm.graph.nodes if n.op == "call_function" and torch_private.mutates(n.target)]
    assert ctx._hessians(params) is not None       # the closed forms, not autograd, were traced


@pytest.mark.slow
def test_mixed_regularizers_compile_and_agree_with_eager_stepping():
    """SGA's mixed none/R1/R2 batch compiles (about a minute with a cold Inductor cache), and
    agrees with eager stepping to rounding."""
    study = _study(LOSSES, {"name": "sga", "lam": 1.0}, REGULARIZERS_CHOSEN)
    (batch,) = study.batches()
    on = run_batch(batch, study.thresholds, compile="on")
    off = run_batch(batch, study.thresholds, compile="off")
    assert (on.runs["stepping"] == "compiled").all(), on.runs["stepping_note"].iloc[0]
    np.testing.assert_allclose(on.trajectories["value"], off.trajectories["value"], rtol=1e-12,
                               atol=1e-14)
    assert on.runs["dynamics"].tolist() == off.runs["dynamics"].tolist()
