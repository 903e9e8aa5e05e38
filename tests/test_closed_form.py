"""Games' closed-form gradients (Game.gradients) against autograd of their losses, for every
registered game and every value of its choice parameters; and the runs they step."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import torch

from gamedyn import StudyError, make_study, tree
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
    _assert_steps_as_autograd(study, monkeypatch, "dirac", ["gradients"], 1e-12, 1e-14)


def _assert_steps_as_autograd(study, monkeypatch, game: str, closed_forms: list[str],
                              rtol: float, atol: float) -> None:
    """``study``'s runs stepped with ``game``'s closed forms, against the same runs with those
    methods returning None (autograd's instead): trajectories to rounding, labels equal."""
    closed = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    for name in closed_forms:
        monkeypatch.setattr(GAMES.get(game), name, lambda self, *args: None)
    plain = [run_batch(b, study.thresholds, compile="off") for b in study.batches()]
    for a, b in zip(closed, plain):
        pd.testing.assert_series_equal(a.trajectories["value"], b.trajectories["value"],
                                       rtol=rtol, atol=atol)
        assert a.runs["dynamics"].tolist() == b.runs["dynamics"].tolist()


def _points(game: Game, n: int = 40):
    """``n`` runs' parameters at scales up to |ψθ| ~ 50 (the losses' far tails)."""
    gen = torch.Generator().manual_seed(1)
    scale = torch.logspace(-2, 0.85, n, dtype=T)
    return {p: {k: torch.randn((n, *s), generator=gen, dtype=T) * scale.reshape(-1, *[1] * len(s))
                for k, s in named.items()} for p, named in game.shapes().items()}


def _autograd_hessians(losses_of, game: Game, params):
    """Each run's Hessian of each player's loss in z (laid out as ``game.coordinates``), by
    torch.autograd.functional.hessian of that run alone."""
    at = game.coordinates(params)
    n = max(s.stop for s in at.values())
    R = next(iter(params["gen"].values())).shape[0]
    out = {p: torch.empty(R, n, n, dtype=T) for p in game.players}
    for r in range(R):
        flat = torch.cat([v[r:r + 1].reshape(1, -1) for p in game.players for v in params[p].values()], 1)

        def unflat(z, r=r):
            tree, i = {}, 0
            for p in game.players:
                tree[p] = {}
                for k, v in params[p].items():
                    m = v[r:r + 1].numel()
                    tree[p][k] = z[i:i + m].reshape(v[r:r + 1].shape)
                    i += m
            return tree

        for p in game.players:
            out[p][r] = torch.autograd.functional.hessian(
                lambda z, p=p: losses_of(unflat(z))[p].sum(), flat[0])
    return out


def test_every_closed_form_hessian_is_autograds():
    """Game.hessians against autograd's Hessian of each run's losses (a run alone, so the check
    is independent of the batched code), for every game that gives one and every loss."""
    checked = set()
    for name, cfg in _configs():
        cls = GAMES.get(name)
        if cls.hessians is Game.hessians:
            continue
        game = cls.build([cfg] * 40, T, "cpu")
        params = _points(game)
        closed = game.hessians(params)
        if closed is None:  # (e.g. bilinear above SMALL_DIM: autograd's products)
            continue
        one = cls.build([cfg], T, "cpu")
        want = _autograd_hessians(one.losses, game, params)
        for p in game.players:
            torch.testing.assert_close(closed[p], want[p], rtol=1e-12, atol=1e-300,
                                       msg=f"{name} {cfg}: Hessian of {p}'s loss")
        checked.add(name)
    assert {"bilinear", "dirac"} <= checked


@pytest.mark.parametrize("reg", ["r1", "r2"])
def test_penalty_derivatives_are_autograds(reg):
    """The R1/R2 penalties' closed-form gradient and Hessian (Dirac-GAN: (γ/2)ψ²) against
    autograd of the penalty as the regularizer computes it (a double backward pass)."""
    from gamedyn.regularizers import REGULARIZERS
    game = GAMES.get("dirac").build([{"loss": "gan"}] * 40, T, "cpu")
    gammas = [{"gamma": g} for g in torch.linspace(0.0, 3.0, 40).tolist()]
    regularizer = REGULARIZERS.get(reg).build(gammas, T, "cpu")
    params = _points(game)
    (grad, hess), = regularizer.derivatives(game, params).values()
    psi = params["disc"]["psi"].detach().requires_grad_()
    pen = regularizer.penalty(game, {"gen": params["gen"], "disc": {"psi": psi}})["disc"]
    (g,) = torch.autograd.grad(pen.sum(), psi, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), psi)
    torch.testing.assert_close(grad[:, 0], g.detach(), rtol=1e-14, atol=0)
    torch.testing.assert_close(hess[:, 0, 0], h, rtol=1e-14, atol=0)


@pytest.mark.parametrize("reg", ["none", "r1", "r2"])
def test_second_order_rules_stepped_with_closed_forms_equal_autograds(reg, monkeypatch):  # Dirac
    """Runs of the rules that take Hessian-vector products (CGD, SGA, consensus, and plain rules
    under a penalty) with the closed-form Hessians and penalty derivatives, against the same runs
    with autograd's, to rounding; the per-run loss choice included."""
    spec = {"name": "h", "game": {"name": "dirac", "loss": ["gan", "nsgan", "wgan"]},
            "rules": ["cgd", {"name": "cgd", "solver": "cg"}, {"name": "sga", "lam": 1.0},
                      {"name": "consensus", "gamma": 1.0}, {"name": "best_response", "max_inner": 3}],
            "regularizer": reg if reg == "none" else {"name": reg, "gamma": [0.0, 1.0]},
            "optimizer": {"name": "sgd", "lr": 0.1}, "seeds": 2, "steps": 30, "record_every": 3,
            "init": {"dist": "normal", "scale": 2.0}}
    study = make_study(spec)
    _assert_steps_as_autograd(study, monkeypatch, "dirac",
                              ["hessians", "input_grad_sq_derivatives"], 1e-9, 1e-12)


def test_bilinear_second_order_runs_with_closed_forms_equal_autograds(monkeypatch):
    spec = {"name": "b", "game": {"name": "bilinear", "dim": 2, "A": "random", "A_seed": 1},
            "rules": ["cgd", {"name": "sga", "lam": 1.0}, {"name": "consensus", "gamma": 1.0}],
            "optimizer": {"name": "sgd", "lr": [0.1, 0.3]}, "seeds": 2, "steps": 80,
            "record_every": 4}
    _assert_steps_as_autograd(make_study(spec), monkeypatch, "bilinear", ["hessians"], 1e-10, 1e-12)


@pytest.mark.parametrize("reg", ["none", "r1", "r2"])
def test_differentiable_closed_forms_have_autograds_derivatives(reg, monkeypatch):
    """Where a game's closed-form field is differentiable (the Dirac-GAN, bilinear), a context
    that differentiates again (create_graph: unrolling, the stability analysis) uses it: its
    values and its derivatives (Jᵀv for a random v) are autograd's through the (penalised) losses,
    to rounding; the penalties' closed forms included."""
    from gamedyn.regularizers import REGULARIZERS
    from gamedyn.rules import Context

    cases = [("dirac", {"loss": loss}) for loss in ("gan", "nsgan", "wgan")]
    if reg == "none":
        cases += [("bilinear", {"dim": 3, "A": "random", "A_seed": 2})]
    assert all(GAMES.get(name).differentiable_gradients for name, _ in cases)
    for name, cfg in cases:
        cls = GAMES.get(name)
        full = cls.resolve(cfg, "game")
        game = cls.build([full] * 40, T, "cpu")
        regularizer = REGULARIZERS.get(reg).build([{"gamma": 0.7}] * 40 if reg != "none" else
                                                  [{}] * 40, T, "cpu")
        params = {p: {k: v.requires_grad_() for k, v in named.items()}
                  for p, named in _points(game).items()}
        v = {p: {k: torch.randn_like(x) for k, x in named.items()} for p, named in params.items()}

        found = []
        for differentiable in (True, False):  # the closed form, then autograd's
            monkeypatch.setattr(cls, "differentiable_gradients", differentiable)
            xi = Context(game, {}, create_graph=True, regularizer=regularizer).grad(params)
            jtv = torch.autograd.grad(tree.vdot(xi, v).sum(), tree.leaves(params))
            found.append(([x.detach() for x in tree.leaves(xi)], jtv))
        closed, autograd = found
        for a, b in zip([*closed[0], *closed[1]], [*autograd[0], *autograd[1]]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"{name} {cfg} {reg}")
