"""Games' closed-form gradients (Game.gradients) against autograd of their losses, for every
registered game and every value of its choice parameters; and the runs they step."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import torch

from gamedyn import StudyError, make_study
from gamedyn.batch import run_batch
from gamedyn.games import GAMES
from gamedyn.games.base import Game

T = torch.float64


def _configs():
    """(name, resolved game config) for each game and each combination of its choice parameters."""
    for name in GAMES.names():
        cls = GAMES.get(name)
        if cls.gradients is Game.gradients:
            continue  # no closed form: autograd
        choices = {k: p.choices for k, p in cls.params.items() if getattr(p, "choices", None)}
        for combo in itertools.product(*choices.values()):
            spec = {"name": name, **dict(zip(choices, combo))}
            for extra in ({}, {"dim": 3}, {"dim": 6, "A": "random"}) if name == "bilinear" else ({},):
                try:
                    study = make_study({"name": "t", "game": {**spec, **extra},
                                        "rules": ["simultaneous"], "optimizer": {"name": "sgd"},
                                        "steps": 1})
                except StudyError as e:
                    raise AssertionError(f"{name}: a game with a closed form is tested on its "
                                         f"defaults, which fail: {e}") from None
                yield name, study.runs[0].config["game"]


def _autograd(game: Game, params):
    leaves = {p: {k: v.detach().requires_grad_() for k, v in named.items()}
              for p, named in params.items()}
    losses = game.losses(leaves)
    return {p: dict(zip(leaves[p], torch.autograd.grad(losses[p].sum(), list(leaves[p].values()),
                                                      retain_graph=True)))
            for p in leaves}


def test_every_closed_form_is_autograds_gradient():
    checked = set()
    for name, cfg in _configs():
        game = GAMES.get(name).build([cfg] * 40, T, "cpu")
        gen = torch.Generator().manual_seed(0)
        # scales up to |ψθ| ~ 50: the saturating losses' far tails, where exactness is hardest
        scale = torch.logspace(-2, 0.85, 40, dtype=T)
        params = {p: {k: torch.randn((40, *s), generator=gen, dtype=T) * scale.reshape(-1, *[1] * len(s))
                      for k, s in named.items()} for p, named in game.shapes().items()}
        closed = game.gradients(params)
        want = _autograd(game, params)
        for p in want:
            for k in want[p]:
                torch.testing.assert_close(closed[p][k], want[p][k], rtol=1e-14, atol=1e-300,
                                           msg=f"{name} {cfg}: {p}.{k}")
        checked.add(name)
    assert {"bilinear", "dirac"} <= checked


@pytest.mark.parametrize("loss", ["gan", "nsgan", "wgan"])
def test_runs_stepped_with_the_closed_form_equal_autograds_to_rounding(loss, monkeypatch):
    study = make_study({"name": "c", "game": {"name": "dirac", "loss": loss},
                        "rules": ["simultaneous", {"name": "alternating", "disc_steps": 2}],
                        "optimizer": {"name": "sgd", "lr": 0.2}, "seeds": 3, "steps": 60,
                        "record_every": 3, "init": {"dist": "normal", "scale": 2.0}})
    closed = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    monkeypatch.setattr(GAMES.get("dirac"), "gradients", lambda self, params: None)
    plain = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    for a, b in zip(closed, plain):
        pd.testing.assert_series_equal(a.trajectories["value"], b.trajectories["value"],
                                       rtol=1e-12, atol=1e-14)
        assert a.runs["dynamics"].tolist() == b.runs["dynamics"].tolist()
