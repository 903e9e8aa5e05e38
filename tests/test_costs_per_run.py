"""Cost counters (issue 17, item 3): per run, in the rule state, the same alone and in any batch.

``state["counts"]`` holds each run's gradient evaluations and Hessian-vector products (int64 ``[R]``),
advanced by every step. They are checked against an independent count (a context that counts the
evaluations a rule really asks for, one run at a time) and against the same runs stepped alone.
"""

import numpy as np
import pytest
import torch

from gamedyn import stability
from gamedyn.games import GAMES
from gamedyn.optim import OPTIMIZERS
from gamedyn.rules import RULES, Context
from gamedyn.rules.base import count, zero_counts

from .conftest import build, simulate

DT = torch.float64


class CountingContext(Context):
    """A context that counts the evaluations it is asked for (all runs together: use R = 1)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = {"grad_evals": 0, "hvps": 0}

    def grad(self, *args, **kwargs):
        self.calls["grad_evals"] += 1
        return super().grad(*args, **kwargs)

    def hvp(self, *args, **kwargs):
        self.calls["hvps"] += 1
        return super().hvp(*args, **kwargs)

    def field_vjp(self, *args, **kwargs):
        self.calls["hvps"] += 1
        return super().field_vjp(*args, **kwargs)

    def field_jvp(self, *args, **kwargs):  # its inner Jᵀu goes through a context with a graph
        self.calls["hvps"] += 1
        return super().field_jvp(*args, **kwargs)


def _dirac(n_runs, lrs=(0.3, 0.3)):
    game = build(GAMES, "dirac", [{"loss": "gan"}] * n_runs)
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": lr, "momentum": 0.3}] * n_runs)
            for p, lr in zip(("gen", "disc"), lrs)}
    return game, opts


@pytest.mark.parametrize("rule", [
    "simultaneous", {"name": "alternating", "disc_steps": 3, "gen_steps": 2}, "extragradient",
    "optimistic", "past_extragradient", "consensus", "sga",
    {"name": "best_response", "tol": 0.05, "max_inner": 30},
    {"name": "cgd", "solver": "cg"}, {"name": "cgd", "solver": "cg", "warm_start": False},
    {"name": "cgd", "solver": "cgnr"}, {"name": "cgd", "solver": "cgnr", "warm_start": False},
])
def test_counters_equal_the_evaluations_the_rule_asks_for(rule):
    """One run (so that every evaluation is that run's): the state's counters after ``init`` and
    after each step are the number of field evaluations and Hessian-vector products done."""
    cfg = {"name": rule} if isinstance(rule, str) else rule
    game, opts = _dirac(1, lrs=(0.3, 0.7))
    r = build(RULES, cfg["name"], [{k: v for k, v in cfg.items() if k != "name"}])
    ctx = CountingContext(game, opts)
    params = {"gen": {"theta": torch.tensor([1.0], dtype=DT)},
              "disc": {"psi": torch.tensor([0.4], dtype=DT)}}
    state = r.init(ctx, params)
    seen = []
    for _ in range(6):
        assert {c: state["counts"][c].tolist() for c in ctx.calls} == {c: [n] for c, n in ctx.calls.items()}
        params, state = r.step(ctx, params, state)
        seen.append(dict(ctx.calls))
    assert {c: state["counts"][c].tolist() for c in ctx.calls} == {c: [n] for c, n in ctx.calls.items()}
    assert seen[-1]["grad_evals"] > 0
    for c in ("grad_evals", "hvps"):
        assert state["counts"][c].dtype == torch.int64


def test_extragradient_counts_two_gradient_evaluations_per_step():
    game, opts = _dirac(4)
    rule = build(RULES, "extragradient", [{}] * 4)
    ctx = Context(game, opts)
    params = {"gen": {"theta": torch.linspace(-1, 1, 4, dtype=DT)},
              "disc": {"psi": torch.linspace(1, 2, 4, dtype=DT)}}
    state = rule.init(ctx, params)
    for _ in range(5):
        params, state = rule.step(ctx, params, state)
    assert state["counts"]["grad_evals"].tolist() == [10] * 4
    assert state["counts"]["hvps"].tolist() == [0] * 4


def _step_many(rule_name, rule_cfgs, game_name, game_cfg, opt_cfgs, params, steps):
    """The counters after ``steps`` steps of a batch of len(rule_cfgs) runs."""
    R = len(rule_cfgs)
    game = build(GAMES, game_name, [game_cfg] * R)
    opts = {p: build(OPTIMIZERS, "sgd", [c[p] for c in opt_cfgs]) for p in ("gen", "disc")}
    rule = build(RULES, rule_name, rule_cfgs)
    ctx = Context(game, opts)
    state = rule.init(ctx, params)
    for _ in range(steps):
        params, state = rule.step(ctx, params, state)
    return state["counts"]


def _alone_and_together(rule_name, rule_cfgs, game_name, game_cfg, opt_cfgs, params, steps):
    together = _step_many(rule_name, rule_cfgs, game_name, game_cfg, opt_cfgs, params, steps)
    alone = [_step_many(rule_name, rule_cfgs[r:r + 1], game_name, game_cfg, opt_cfgs[r:r + 1],
                        {p: {k: v[r:r + 1] for k, v in named.items()} for p, named in params.items()},
                        steps) for r in range(len(rule_cfgs))]
    for c in ("grad_evals", "hvps"):
        assert together[c].tolist() == [int(a[c].item()) for a in alone], c
    return together


def test_best_response_counts_each_runs_own_inner_steps():
    """Disc learning rates 2.0, 0.5, 0.02 (the inner loops of test_rules_competitive's hand
    computation: [3, 0, 1, 1], [14, 1, 3, 3] and [25, 25, 25, 25] inner steps): n + 1 gradient
    evaluations per step with n inner steps, each run its own, alone or in the batch."""
    lrs = [2.0, 0.5, 0.02]
    rule = [{"tol": 0.1, "max_inner": 25}] * 3
    opts = [{"gen": {"lr": 0.5, "momentum": 0.3}, "disc": {"lr": lr, "momentum": 0.3}} for lr in lrs]
    params = {"gen": {"theta": torch.ones(3, dtype=DT)}, "disc": {"psi": torch.zeros(3, dtype=DT)}}
    counts = _alone_and_together("best_response", rule, "dirac", {"loss": "gan"}, opts, params, 4)
    assert counts["grad_evals"].tolist() == [5 + 4, 21 + 4, 100 + 4]
    assert counts["hvps"].tolist() == [0, 0, 0]


@pytest.mark.parametrize("solver", ["cg", "cgnr"])
def test_cgd_counts_each_runs_own_cg_iterations(solver):
    """A random 4-D bilinear game; runs with different learning rates, tolerances and starts (one
    at the equilibrium, where CG has nothing to do) take different numbers of CG iterations: each
    run's products are its own, whichever runs share its batch."""
    R = 3
    g = torch.Generator().manual_seed(0)
    params = {"gen": {"x": torch.randn(R, 4, generator=g, dtype=DT)},
              "disc": {"y": torch.randn(R, 4, generator=g, dtype=DT)}}
    params["gen"]["x"][2] = 0
    params["disc"]["y"][2] = 0
    rule = [{"solver": solver, "tol": tol} for tol in (1e-12, 1e-1, 1e-12)]
    opts = [{"gen": {"lr": lr}, "disc": {"lr": lr}} for lr in (0.3, 0.05, 0.3)]
    counts = _alone_and_together("cgd", rule, "bilinear", {"dim": 4, "A": "random"}, opts, params, 3)
    hv = counts["hvps"].tolist()
    assert len(set(hv)) == 3, hv   # three different workloads: a batch maximum would make them one
    assert hv[2] == 3 * (2 + 2 + (4 if solver == "cgnr" else 0))   # no CG iteration at all
    assert counts["grad_evals"].tolist() == [3] * R


def test_study_columns_are_per_run_and_do_not_depend_on_the_batch():
    """Through the batch runner: best response's cost columns with the three runs in one batch and
    each in its own (max_batch 1) are equal, and each is that run's own count."""
    spec = dict(game={"name": "dirac", "loss": "gan"},
                rule={"name": "best_response", "tol": 0.1, "max_inner": 25}, steps=4,
                init={"gen": {"theta": 1.0}, "disc": {"psi": 0.0}},
                optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.3, "disc": {"lr": [2.0, 0.5, 0.02]}})
    together, _ = simulate(**spec)
    alone, _ = simulate(**spec, max_batch=1)
    assert together["batch_id"].nunique() == 1 and alone["batch_id"].nunique() == 3
    cols = ["grad_evals", "hvps", "grad_evals_per_step", "hvps_per_step"]
    a = alone.set_index("run_id").loc[together["run_id"], cols].reset_index(drop=True)
    assert (a.to_numpy() == together[cols].to_numpy()).all()
    by_lr = together.set_index("optimizer.disc.lr")
    assert by_lr.loc[[2.0, 0.5, 0.02], "grad_evals"].tolist() == [9, 25, 104]
    np.testing.assert_allclose(by_lr.loc[[2.0, 0.5, 0.02], "grad_evals_per_step"], [9 / 4, 25 / 4, 26])


def test_count_helper_takes_ints_and_per_run_tensors_and_is_pure():
    params = {"gen": {"x": torch.zeros(3, 2, dtype=DT)}}
    zero = zero_counts(params)
    assert {c: v.tolist() for c, v in zero.items()} == {"grad_evals": [0, 0, 0], "hvps": [0, 0, 0]}
    one = count(zero, grad_evals=1, hvps=torch.tensor([0, 2, 5]))
    assert one["grad_evals"].tolist() == [1, 1, 1] and one["hvps"].tolist() == [0, 2, 5]
    assert zero["grad_evals"].tolist() == [0, 0, 0]  # not modified in place


def test_a_plugin_rule_that_does_not_count_keeps_its_counters():
    """A user's rule whose step ignores ``state["counts"]`` (as tests/plugin_rules.py and
    studies/plugins do) keeps the zero counters the base ``init`` gave it."""
    from gamedyn.rules.base import Rule

    class Plain(Rule):
        params = {}

        def step(self, ctx, params, state):
            params, opt = ctx.apply(ctx.grad(params), params, state["opt"])
            return params, {**state, "opt": opt}

    game, opts = _dirac(2)
    ctx = Context(game, opts)
    rule = Plain()
    params = {"gen": {"theta": torch.ones(2, dtype=DT)}, "disc": {"psi": torch.ones(2, dtype=DT)}}
    state = rule.init(ctx, params)
    params, state = rule.step(ctx, params, state)
    assert state["counts"]["grad_evals"].tolist() == [0, 0]


def test_counters_are_not_state_of_the_stability_analysis():
    """The integer counters are constants of the update map: simultaneous play with SGD on xy has
    4 state coordinates (x, y and their velocities), none of them a counter."""
    game = build(GAMES, "bilinear", [{}])
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": 0.2}]) for p in ("gen", "disc")}
    step = stability.StepMap(game, build(RULES, "simultaneous", [{}]), opts, n_runs=1)
    assert step.n == 4
    assert not any("counts" in name for name in step.layout.names())
    np.testing.assert_allclose(step.jacobian()[0, :2, :2].numpy(), [[1, -0.2], [0.2, 1]], atol=1e-15)
