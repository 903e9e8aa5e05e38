"""Contracts every registered update rule keeps, with every optimizer, on several games.

One table crossed with itself, as optax's ``alias_test.py`` crosses every optimizer with its test
problems: every rule of :data:`gamedyn.rules.RULES` (read at collection time, so a rule registered
by a module imported before collection — a plugin — is covered without touching this file) × every
optimizer of :data:`gamedyn.optim.OPTIMIZERS` × the games of :data:`GAMES_UNDER_TEST` (a linear and
a non-linear deterministic game, and a minibatch GAN that draws random numbers at every gradient).
For each combination:

- ``init`` and ``step`` are pure: they change neither values nor version counters of the
  tensors they are given (the Rule docstring, :mod:`gamedyn.rules.base`);
- a history kept in the state starts from the initial point (the field ξ(z₀), or z₀ itself), never
  from zeros; the step 0 of each built-in history rule is, bit for bit, the step of the rule it
  reduces to (:data:`STEP0_REFERENCE`);
- the cost counters ``state["counts"]`` are per-run int64 ``[R]`` tensors that grow with every
  step, and the runs table's ``grad_evals``/``hvps`` columns are them;
- a run alone equals, bit for bit, the same run among different batch-mates (trajectories and
  every column of the runs table that is not a timing or the batch's own description);
- where fusion applies, compiled stepping gives the eager results (to the rounding
  ``tests/test_fuse.py`` allows), and where it does not it falls back saying why, with the eager
  results exactly; a second batch of the same structure reuses the compiled chunk.

Costs: compiling a chunk with Inductor takes seconds per structure (a cold cache), so the default
run checks fusion for every rule with one optimizer and one game (:data:`FUSED_OPTIMIZER`,
:data:`FUSED_GAME`, chunks of one step); the full cross of the fused checks is ``slow``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import fuse, stability
from gamedyn.batch import run_batch
from gamedyn.games import GAMES
from gamedyn.init import initial_params
from gamedyn.optim import OPTIMIZERS
from gamedyn.random import Streams
from gamedyn.regularizers import REGULARIZERS
from gamedyn.rules import RULES, Context
from gamedyn.study import make_study

# --- the table ---------------------------------------------------------------------------------

GAMES_UNDER_TEST = {
    "bilinear": {"name": "bilinear", "dim": 2, "A": "random"},
    "dirac": {"name": "dirac", "loss": "nsgan"},
    "gan1d_minibatch": {"name": "gan1d", "discriminator": "learned", "gradient": "minibatch",
                        "batch": 8, "diagnostics": "fit"},
}
#: Games whose field is a function of the point alone (no draws): step-by-step comparisons between
#: two rules need the same field at the same point.
DETERMINISTIC = ("bilinear", "dirac")
#: Shorter inner loops than the defaults (the contracts do not depend on their length); every other
#: rule, a plugin's included, at its defaults.
RULE_OVERRIDES = {"best_response": {"max_inner": 3}, "unrolled": {"k": 2}}
#: Built-in rules with a history in their state, and the rule their step 0 is (their docstrings).
STEP0_REFERENCE = {"optimistic": "simultaneous", "past_extragradient": "extragradient"}
#: Built-in rules whose step cannot be traced (value-dependent Python control flow in an inner loop,
#: fuse's module docstring): with ``compile="on"`` they step eagerly and say why. ``lss`` solves
#: by conjugate gradients until each run's residual is small, as ``cgd``.
UNFUSABLE = {"best_response", "cgd", "lss"}
#: The one optimizer and game of the default run's fused checks.
FUSED_OPTIMIZER, FUSED_GAME = "sgd", "bilinear"
#: Columns of the runs table that describe the batch or time it, not the run.
NOT_OF_THE_RUN = {"batch_id", "batch_size", "wall_time", "compile_time"}

RULE_NAMES = RULES.names()
OPTIMIZER_NAMES = OPTIMIZERS.names()
GAME_NAMES = list(GAMES_UNDER_TEST)
LRS = [0.02, 0.05]
SEEDS = 2
RUNS = SEEDS * len(LRS)
ALONE = 2   # the run stepped alone: neither the first nor the last of its batch

rules = pytest.mark.parametrize("rule", RULE_NAMES)
optimizers = pytest.mark.parametrize("optimizer", OPTIMIZER_NAMES)
games = pytest.mark.parametrize("game", GAME_NAMES)
deterministic_games = pytest.mark.parametrize("game", DETERMINISTIC)


def builtin(rule: str) -> bool:
    return RULES.get(rule).__module__.startswith("gamedyn.rules.")


def rule_config(rule: str) -> dict[str, Any]:
    return {"name": rule, **RULE_OVERRIDES.get(rule, {})}


def make_batch(game: str, rule: str, optimizer: str, steps: int = 6, record_every: int = 1,
               seeds: int = SEEDS, lrs: list[float] = LRS, seed0: int = 0):
    """A study of one batch: ``seeds`` seeds × ``lrs``, different runs of one structure."""
    study = make_study({
        "name": "contract", "game": GAMES_UNDER_TEST[game], "rules": [rule_config(rule)],
        "optimizer": {"name": optimizer, "lr": list(lrs)},
        "seeds": list(range(seed0, seed0 + seeds)), "steps": steps, "record_every": record_every,
        "init": {"dist": "normal", "scale": 0.5}})
    (batch,) = study.batches()
    assert len(batch) == seeds * len(lrs)
    return study, batch


def components(batch):
    """The rule, its context and the initial point of ``batch``'s runs, built as the batch runner
    builds them, for stepping by hand (R = the batch's runs, no padding)."""
    configs = [r.config for r in batch]
    cfg, dtype = configs[0], getattr(torch, configs[0]["dtype"])

    def build(registry, key, sub=None):
        name = cfg[key][sub]["name"] if sub else cfg[key]["name"]
        return registry.get(name).build([c[key][sub] if sub else c[key] for c in configs], dtype)

    game = build(GAMES, "game")
    rule = build(RULES, "rule")
    opts = {p: build(OPTIMIZERS, "optimizer", p) for p in game.players}
    seeds = [c["seed"] for c in configs]
    game.rng = Streams(torch.tensor(seeds, dtype=torch.int64))
    params = initial_params(game, [c["init"] for c in configs], seeds)
    return rule, Context(game, opts, regularizer=build(REGULARIZERS, "regularizer")), params


# --- trees of tensors --------------------------------------------------------------------------

def snapshot(tree: Any) -> Any:
    """Every tensor of ``tree`` cloned, with the version counter it had (in-place ops bump it)."""
    if isinstance(tree, dict):
        return {k: snapshot(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(snapshot(v) for v in tree)
    if isinstance(tree, torch.Tensor):
        return ("tensor", tree.detach().clone(), tree._version)
    return tree


def assert_unchanged(before: Any, after: Any, where: str = "") -> None:
    if isinstance(before, dict):
        assert isinstance(after, dict) and list(after) == list(before), where
        for k in before:
            assert_unchanged(before[k], after[k], f"{where}.{k}")
    elif isinstance(before, tuple) and before[:1] == ("tensor",):
        _, value, version = before
        assert isinstance(after, torch.Tensor), where
        assert after._version == version, f"{where}: changed in place"
        torch.testing.assert_close(after.detach(), value, rtol=0, atol=0, equal_nan=True,
                                   msg=f"{where}: values changed")
    elif isinstance(before, (list, tuple)):
        assert type(after) is type(before) and len(after) == len(before), where
        for i, (b, a) in enumerate(zip(before, after)):
            assert_unchanged(b, a, f"{where}[{i}]")
    else:
        assert after == before, where


def assert_equal_trees(a: Any, b: Any, where: str = "") -> None:
    """Same structure and bit-for-bit the same tensors."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for k in a:
            assert_equal_trees(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, torch.Tensor):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=where)
    else:
        assert a == b, where


def shaped_like(value: Any, params: dict) -> bool:
    """Whether ``value`` is a tree of the params' players, names and shapes (a field, a point)."""
    return (isinstance(value, dict) and list(value) == list(params)
            and all(isinstance(value[p], dict) and list(value[p]) == list(params[p])
                    and all(isinstance(value[p][k], torch.Tensor)
                            and value[p][k].shape == params[p][k].shape for k in params[p])
                    for p in params))


def history_keys(state: dict, params: dict) -> list[str]:
    return [k for k, v in state.items() if k not in ("opt", "counts") and shaped_like(v, params)]


# --- purity ------------------------------------------------------------------------------------

@games
@optimizers
@rules
def test_init_and_step_do_not_change_their_inputs(rule, optimizer, game):
    """Three steps from the initial point; after each, the params and state it was given have their
    values and their version counters (so no in-place op, even one that writes the same value)."""
    r, ctx, params = components(make_batch(game, rule, optimizer)[1])
    before = snapshot(params)
    state = r.init(ctx, params)
    assert_unchanged(before, params, "params (init)")
    for k in range(3):
        before = snapshot((params, state))
        new_params, new_state = r.step(ctx, params, state)
        assert_unchanged(before, (params, state), f"step {k}: (params, state)")
        assert new_params is not params and new_state is not state
        params, state = new_params, new_state


# --- the first step of history rules -----------------------------------------------------------

@games
@rules
def test_a_history_starts_at_the_initial_point(rule, game):
    """Each entry of ``init``'s state shaped like the parameters (a stored field or point) is the
    field at z₀ — evaluated on the same draws, for a minibatch game — or z₀ itself, never zeros
    (the jump of optax issue #1082)."""
    r, ctx, params = components(make_batch(game, rule, "sgd")[1])
    rng = ctx.game.rng
    before = rng.counter
    state = r.init(ctx, params)
    rng.counter = before   # the field on the draws init saw (draws are a function of the counter)
    field = ctx.grad(params)
    for key in history_keys(state, params):
        stored = state[key]
        for p in params:
            for k in params[p]:
                v = stored[p][k].detach()
                assert (torch.equal(v, field[p][k]) or torch.equal(v, params[p][k])), \
                    f"state[{key!r}][{p!r}][{k!r}] is neither ξ(z₀) nor z₀"


def test_every_builtin_history_rule_has_a_step0_reference():
    """A built-in rule whose state keeps a field or point must say, in :data:`STEP0_REFERENCE`, which
    rule its step 0 is (so the next test checks it); and the table names only registered rules."""
    assert set(STEP0_REFERENCE) | set(STEP0_REFERENCE.values()) <= set(RULE_NAMES)
    with_history = set()
    for rule in RULE_NAMES:
        if builtin(rule):
            r, ctx, params = components(make_batch("bilinear", rule, "sgd")[1])
            if history_keys(r.init(ctx, params), params):
                with_history.add(rule)
    assert with_history == set(STEP0_REFERENCE)


@deterministic_games
@optimizers
@pytest.mark.parametrize("rule", sorted(STEP0_REFERENCE))
def test_step0_of_a_history_rule_is_its_reference_step(rule, optimizer, game):
    """Optimistic's step 0 is the simultaneous step, extragradient-from-the-past's the extragradient
    step (their docstrings): the same point and optimizer state, bit for bit, for every optimizer."""
    _, batch = make_batch(game, rule, optimizer)
    r, ctx, params = components(batch)
    got, got_state = r.step(ctx, params, r.init(ctx, params))
    ref_cls = RULES.get(STEP0_REFERENCE[rule])
    ref_rule = ref_cls.build([ref_cls.resolve({}, "rule")] * len(batch), torch.float64)
    want, want_state = ref_rule.step(ctx, params, ref_rule.init(ctx, params))
    assert_equal_trees(got, want, "params")
    assert_equal_trees(got_state["opt"], want_state["opt"], "opt")
    moved = any(not torch.equal(got[p][k], params[p][k]) for p in params for k in params[p])
    assert moved


# --- cost counters -----------------------------------------------------------------------------

COUNTERS = ("grad_evals", "hvps")


@games
@optimizers
@rules
def test_cost_counters_are_per_run_and_grow_with_each_step(rule, optimizer, game):
    """``state["counts"]``: int64 ``[R]`` for each counter, from ``init`` on; after each step the
    field evaluations have grown for every run (a built-in rule evaluates the field at least once
    a step; a plugin may leave its counters as they are, the Rule docstring) and the
    Hessian-vector products have not shrunk."""
    r, ctx, params = components(make_batch(game, rule, optimizer)[1])
    state = r.init(ctx, params)
    assert set(state["counts"]) == set(COUNTERS)
    for c in COUNTERS:
        assert state["counts"][c].dtype == torch.int64 and state["counts"][c].shape == (RUNS,), c
    for _ in range(3):
        old = state["counts"]
        params, state = r.step(ctx, params, state)
        new = state["counts"]
        assert set(new) == set(COUNTERS)
        assert new["grad_evals"].dtype == torch.int64 and new["grad_evals"].shape == (RUNS,)
        if builtin(rule):
            assert (new["grad_evals"] > old["grad_evals"]).all(), (old, new)
        assert (new["grad_evals"] >= old["grad_evals"]).all() and (new["hvps"] >= old["hvps"]).all()


@games
@optimizers
@rules
def test_the_runs_table_counts_are_the_states(rule, optimizer, game):
    """The runs table's ``grad_evals``/``hvps`` of each run are its ``state["counts"]`` after
    ``init`` and the study's steps, stepped by hand; ``*_per_step`` divide them by the steps."""
    steps = 6
    study, batch = make_batch(game, rule, optimizer, steps=steps)
    r, ctx, params = components(batch)
    state = r.init(ctx, params)
    for _ in range(steps):
        params, state = r.step(ctx, params, state)
    runs = run_batch(batch, study.thresholds, compile="off").runs
    assert (runs["steps_done"] == steps).all()
    for c in COUNTERS:
        np.testing.assert_array_equal(runs[c].to_numpy(), state["counts"][c].numpy(), err_msg=c)
        np.testing.assert_array_equal(runs[f"{c}_per_step"].to_numpy(),
                                      state["counts"][c].numpy() / steps, err_msg=c)


# --- batch invariance --------------------------------------------------------------------------

def by_run(traj: pd.DataFrame) -> pd.DataFrame:
    t = traj.assign(run_id=traj["run_id"].astype(str), variable=traj["variable"].astype(str))
    return t.sort_values(["run_id", "step", "variable"]).reset_index(drop=True)


def assert_alone_equals_in_batch(study, batch, index: int, compile: str = "off") -> None:
    """Run ``batch[index]`` alone and within ``batch``: the same trajectory and runs-table row, bit
    for bit (NaN where NaN)."""
    together = run_batch(batch, study.thresholds, compile=compile)
    alone = run_batch([batch[index]], study.thresholds, compile=compile)
    rid = batch[index].run_id
    tt, ta = by_run(together.trajectories), by_run(alone.trajectories)
    mine = tt[tt["run_id"] == rid].reset_index(drop=True)
    assert len(mine) == len(ta) > 0
    np.testing.assert_array_equal(mine["step"].to_numpy(), ta["step"].to_numpy())
    np.testing.assert_array_equal(mine["variable"].to_numpy(), ta["variable"].to_numpy())
    np.testing.assert_array_equal(mine["value"].to_numpy(), ta["value"].to_numpy())
    cols = [c for c in together.runs.columns if c not in NOT_OF_THE_RUN]
    assert set(COUNTERS) | {f"{c}_per_step" for c in COUNTERS} <= set(cols)
    row = together.runs[together.runs["run_id"] == rid][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(row, alone.runs[cols].reset_index(drop=True))


@pytest.mark.invariance
@games
@optimizers
@rules
def test_a_run_alone_equals_the_same_run_in_a_batch(rule, optimizer, game):
    """A run (different seed and learning rate from some of its 3 batch-mates) stepped alone and in
    its batch, eagerly, every step recorded."""
    study, batch = make_batch(game, rule, optimizer)
    assert_alone_equals_in_batch(study, batch, ALONE)


@pytest.mark.invariance
@rules
def test_a_run_alone_equals_the_same_run_in_a_batch_of_over_64(rule):
    """The same in a batch of 70 runs (past one padded block of the run axis, gamedyn.runaxis), the
    run in the second block, on the Dirac-GAN with Adam."""
    study, batch = make_batch("dirac", rule, "adam", seeds=35)
    assert_alone_equals_in_batch(study, batch, 66)


# --- fused stepping ----------------------------------------------------------------------------

@pytest.fixture
def short_chunks(monkeypatch):
    """Chunks of one step and its record (the default unrolls 20): the same code, and a cold
    compilation of a few seconds per rule."""
    monkeypatch.setattr(fuse, "MAX_UNROLL", 1)


def fused_batch(game, rule, optimizer, seed0=0):
    # more steps than fuse.PROBE_STEPS, which are always stepped eagerly before deciding
    return make_batch(game, rule, optimizer, steps=fuse.PROBE_STEPS + 3, record_every=1,
                      seed0=seed0)


def assert_fused_is_eager(study, batch, game: str, rule: str) -> pd.DataFrame:
    """``compile="on"`` against ``compile="off"``: compiled, the trajectories agree to the rounding
    of a differently fused computation (``tests/test_fuse.py``'s ``_same``: rtol 1e-9, atol 1e-12;
    the graph computes the same step functions, fuse's docstring) and the labels and counters
    exactly; not compiled (a built-in rule known to be unfusable, a minibatch game, or a plugin), it
    says why and gives the eager results bit for bit."""
    eager = run_batch(batch, study.thresholds, compile="off")
    fused = run_batch(batch, study.thresholds, compile="on")
    te, tf = eager.trajectories, fused.trajectories
    assert len(te) == len(tf) > 0
    np.testing.assert_array_equal(te["step"].to_numpy(), tf["step"].to_numpy())
    np.testing.assert_array_equal(te["variable"].astype(str).to_numpy(),
                                  tf["variable"].astype(str).to_numpy())
    kind, note = fused.runs["stepping"].iloc[0], fused.runs["stepping_note"].iloc[0]
    expect_compiled = builtin(rule) and rule not in UNFUSABLE and game in DETERMINISTIC
    if kind == "compiled":
        assert note == ""
        np.testing.assert_allclose(tf["value"].to_numpy(), te["value"].to_numpy(), rtol=1e-9,
                                   atol=1e-12)
    else:
        assert kind == "eager" and note, "an eager fallback says why"
        np.testing.assert_array_equal(tf["value"].to_numpy(), te["value"].to_numpy())
    if builtin(rule):
        assert kind == ("compiled" if expect_compiled else "eager"), note
    cols = ["dynamics", "stop_reason", "stopped_step", "steps_done", *COUNTERS]
    pd.testing.assert_frame_equal(eager.runs[cols], fused.runs[cols])
    return fused.runs


def compilations(monkeypatch) -> list[str]:
    """Record each chunk handed to Inductor (compiled, or loaded from its on-disk cache)."""
    from torch._inductor import compile_fx

    calls: list[str] = []
    real = compile_fx.compile_fx_inner

    def counting(gm, *args, **kwargs):
        calls.append(gm.code)
        return real(gm, *args, **kwargs)

    monkeypatch.setattr(compile_fx, "compile_fx_inner", counting)
    return calls


def check_fused(game, rule, optimizer, monkeypatch):
    """A first batch stepped fused gives the eager results (:func:`assert_fused_is_eager`). If it
    was compiled, a second batch of the same structure (other seeds, so other values) hands nothing
    to Inductor, adds no chunk to fuse's per-process table, and gives the eager results too."""
    study, batch = fused_batch(game, rule, optimizer)
    first = assert_fused_is_eager(study, batch, game, rule)
    if first["stepping"].iloc[0] != "compiled":
        return  # nothing compiled, nothing to reuse (the fallback is checked above)
    loaded = dict(fuse._LOADED)
    calls = compilations(monkeypatch)
    study2, batch2 = fused_batch(game, rule, optimizer, seed0=100)
    second = assert_fused_is_eager(study2, batch2, game, rule)
    assert (second["stepping"] == "compiled").all(), second["stepping_note"].iloc[0]
    assert calls == [], f"the second batch compiled {len(calls)} chunk(s) again"
    assert fuse._LOADED.keys() == loaded.keys()


@rules
def test_fused_stepping_gives_the_eager_results_and_reuses_its_chunk(rule, short_chunks,
                                                                    monkeypatch):
    check_fused(FUSED_GAME, rule, FUSED_OPTIMIZER, monkeypatch)


@pytest.mark.slow
@games
@optimizers
@rules
def test_fused_stepping_gives_the_eager_results_and_reuses_its_chunk_across_the_table(
        rule, optimizer, game, short_chunks, monkeypatch):
    check_fused(game, rule, optimizer, monkeypatch)


@pytest.mark.slow
@pytest.mark.invariance
@deterministic_games
@optimizers
@rules
def test_a_run_alone_equals_the_same_run_in_a_batch_fused(rule, optimizer, game, short_chunks):
    """Batch invariance of compiled stepping (or of its eager fallback)."""
    study, batch = fused_batch(game, rule, optimizer)
    assert_alone_equals_in_batch(study, batch, ALONE, compile="on")


def test_the_table_covers_the_registries():
    """Read at collection time: every registered rule and optimizer is in the cross (a rule or
    optimizer registered later in the session would not be)."""
    assert RULE_NAMES == RULES.names() and OPTIMIZER_NAMES == OPTIMIZERS.names()
    assert {"simultaneous", "alternating", "extragradient", "optimistic", "past_extragradient",
            "consensus", "sga", "cgd", "unrolled", "best_response"} <= set(RULE_NAMES)
    assert {"sgd", "adam", "rmsprop"} <= set(OPTIMIZER_NAMES)
    assert set(RULE_OVERRIDES) <= set(RULE_NAMES) and UNFUSABLE <= set(RULE_NAMES)


@rules
def test_the_stability_analysis_draws_nothing_from_the_training_stream(rule):
    """``stability.predict`` linearises one step of a minibatch game on a stream of its own
    (``game.using``), so the training stream's counter — hence every later minibatch — is what it
    was: were it advanced by a number of draws that depends on the batch (an inner loop's
    iterations), a run's noise would depend on its batch-mates."""
    r, ctx, params = components(make_batch("gan1d_minibatch", rule, "sgd")[1])
    before = ctx.game.rng.counter
    stability.predict(ctx.game, r, ctx.optimizers, regularizer=ctx.regularizer, n_runs=RUNS)
    assert ctx.game.rng.counter == before
