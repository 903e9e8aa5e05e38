"""Fused (compiled) stepping gives the eager results, and falls back to eager where it cannot work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import fuse
from gamedyn.batch import run_batch
from gamedyn.games import GAMES
from gamedyn.record import Recorder
from gamedyn.study import make_study


@pytest.fixture(autouse=True)
def _short_chunks(monkeypatch):
    """Chunks of at most 10 steps here (the default unrolls 20): the same code, and half the cold
    compilation time in CI."""
    monkeypatch.setattr(fuse, "MAX_UNROLL", 10)


@pytest.fixture(autouse=True)
def _poisoned_values(monkeypatch):
    """The recorder's values array NaN but for the first record, once allocated: it is allocated
    uninitialised, and may get the memory of the eager twin's freed array, which holds the very
    values a compiled chunk should have written (a record it skipped would go unnoticed)."""
    record = Recorder.record

    def poisoned(self, step, params):
        fresh = self.values is None
        record(self, step, params)
        if fresh:
            self.values[1:] = np.nan

    monkeypatch.setattr(Recorder, "record", poisoned)


def _batches(**spec):
    base = {"name": "fuse", "init": {"dist": "normal", "scale": 1.0}, "seeds": 4}
    study = make_study({**base, **spec})
    return study, study.batches()


def _both(spec: dict, mode: str = "on"):
    """Each batch of the study stepped eagerly and with ``mode``."""
    study, batches = _batches(**spec)
    return [(run_batch(b, study.thresholds, compile="off"), run_batch(b, study.thresholds, compile=mode))
            for b in batches]


def _same(eager, fused, rtol: float = 1e-9) -> None:
    te, tf = eager.trajectories, fused.trajectories
    assert len(te) == len(tf) and (te["step"].to_numpy() == tf["step"].to_numpy()).all()
    assert (te["variable"].astype(str).to_numpy() == tf["variable"].astype(str).to_numpy()).all()
    np.testing.assert_allclose(tf["value"].to_numpy(), te["value"].to_numpy(), rtol=rtol, atol=1e-12)
    cols = ["dynamics", "stop_reason", "stopped_step", "steps_done", "grad_evals", "hvps"]
    pd.testing.assert_frame_equal(eager.runs[cols], fused.runs[cols])


def test_compiled_bilinear_matches_eager_including_blowups():
    """Simultaneous (spirals out, and blows up within the budget at lr 0.9) and extragradient
    (spirals in at lr 0.05) with heavy-ball momentum on a random 2-D bilinear game: the compiled
    chunks (10 steps and the record) give the eager trajectories and labels, cost counters
    included."""
    spec = {"game": {"name": "bilinear", "dim": 2, "A": "random"},
            "rules": ["simultaneous", "extragradient"],
            "optimizer": {"name": "sgd", "lr": [0.05, 0.9], "momentum": 0.3},
            "steps": 400, "record_every": 10}
    pairs = _both(spec)
    for eager, fused in pairs:
        assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
        assert (fused.runs["compile_time"] > 0).all()
        _same(eager, fused)
    outcomes = pd.concat([f.runs for _, f in pairs])
    assert {"diverged", "converged"} <= set(outcomes["dynamics"])
    assert (outcomes["stop_reason"] == "blowup").any()


def test_compiled_chunks_of_several_records_judge_blowups_inside_a_chunk():
    """Recording every 2 steps: each compiled chunk steps 5 intervals and returns their 5 records
    with the runs each stops; runs at lr 0.9 blow up at a record inside a chunk, and are cut
    there exactly as eagerly (``stopped_step``, ``stop_reason``, the trajectories)."""
    spec = {"game": {"name": "bilinear", "dim": 2, "A": "random"}, "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": [0.05, 0.9]}, "steps": 300, "record_every": 2}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    stopped = fused.runs["stopped_step"].dropna()
    assert len(stopped) and (stopped % 10 != 0).any()  # not only at a chunk's end
    _same(eager, fused)


@pytest.mark.parametrize("stage", [3, 9])
def test_compiled_records_written_through_a_stage(monkeypatch, stage):
    """Compiled chunks write their records (4 a chunk here) into a stage of a few records, copied
    into the values when it is full and at each check (3: smaller than a chunk, so made a chunk's
    size; 9: two chunks, then full): every record lands where eager stepping stores it, and runs
    that blow up inside a chunk stop where they do eagerly."""
    from gamedyn import record

    monkeypatch.setattr(record, "STAGE_RECORDS", stage)
    spec = {"game": {"name": "bilinear", "dim": 2, "A": "random"}, "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": [0.05, 0.9]}, "steps": 200, "record_every": 5}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    assert fused.runs["stopped_step"].notna().any()
    _same(eager, fused)


def test_the_stage_holds_a_check_of_records_or_what_fits_its_bytes(monkeypatch):
    """The stage holds ``STAGE_RECORDS`` records, fewer where they would take more than
    ``STAGE_BYTES`` (so that it stays in cache at any width), and at least one chunk's records."""
    from gamedyn import record

    cls = GAMES.get("bilinear")
    game = cls.build([cls.resolve({"dim": 2}, "g")] * 6, torch.float64)
    params = {"gen": {"x": torch.full((6, 2), 0.5, dtype=torch.float64)},
              "disc": {"y": torch.full((6, 2), 2.0, dtype=torch.float64)}}

    def recorder() -> Recorder:
        rec = Recorder(game, 6, steps=1000, record_every=1, blowup=10.0)
        rec.record(0, params)
        return rec

    def calls(m: int) -> int:  # the calls of m records the stage takes from record 1 on
        return len(recorder().slots(1, m, calls=1000))

    one = len(recorder().variables) * 6 * 8                            # a record's bytes
    assert calls(1) == record.STAGE_RECORDS == 64
    monkeypatch.setattr(record, "STAGE_BYTES", 5 * one + one // 2)   # 5½ records' bytes
    assert calls(1) == 5 and calls(2) == 2
    monkeypatch.setattr(record, "STAGE_BYTES", one - 1)             # less than one record
    assert calls(1) == 1 and calls(4) == 1


def test_judgement_flags_nonfinite_values_and_blowups_eagerly_and_compiled():
    """``Recorder.judge`` on hand-made records of six bilinear runs: an infinite or NaN loss or
    gradient norm at finite parameters, a distance over the blow-up limit, and two sound runs; eagerly
    and compiled by Inductor, its flags are those of numpy's isfinite and the limit."""
    cls = GAMES.get("bilinear")
    game = cls.build([cls.resolve({"dim": 1}, "g")] * 6, torch.float64)
    rec = Recorder(game, 6, steps=10, record_every=1, blowup=10.0)
    params = {"gen": {"x": torch.full((6, 1), 0.5, dtype=torch.float64)},
              "disc": {"y": torch.full((6, 1), 2.0, dtype=torch.float64)}}
    rec.record(0, params)
    V = rec.variables
    rows = rec.row(params).unsqueeze(0).repeat(2, 1, 1)                      # [2, V, R]
    rows[1, V.index("loss.gen"), 0] = float("inf")
    rows[1, V.index("loss.disc"), 1] = float("nan")
    rows[1, V.index("grad_norm.gen"), 2] = -float("inf")
    rows[1, V.index("distance"), 3] = 1e9
    rows[1, V.index("distance"), 4] = 0.9 * rec._limit[4]
    r = rows.numpy()
    expected = ~np.isfinite(r).all(1) | (r[:, V.index("distance")] > rec._limit.numpy())
    assert expected[1].tolist() == [True] * 4 + [False] * 2 and not expected[0].any()
    assert ((rec.judge(rows) != 0).numpy() == expected).all()
    compiled = torch.compile(rec.judge, fullgraph=True)
    assert ((compiled(rows) != 0).numpy() == expected).all()


def test_compiled_chunks_stop_nonfinite_runs_inside_a_chunk():
    """With the blow-up threshold out of reach, runs at lr 10¹⁰ on the WGAN Dirac-GAN overflow to
    ±inf and NaN: the compiled chunk's judgement (float arithmetic, no isfinite) flags them at the
    same record as eager stepping, as ``nonfinite``, and their batch mates go on."""
    spec = {"game": {"name": "dirac", "loss": "wgan"}, "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": [1e10, 0.1]}, "steps": 60, "record_every": 2,
            "diagnose": {"blowup": 1e300}}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    reasons = set(fused.runs["stop_reason"].dropna())
    assert reasons == {"nonfinite"} and fused.runs["stop_reason"].isna().any()
    _same(eager, fused)


@pytest.mark.parametrize("rule", [{"name": "unrolled", "k": 2}, "consensus", "sga"])
def test_compiled_second_order_rules_match_eager(rule, monkeypatch):
    """Rules that differentiate through gradients or updates (unrolled: through the look-ahead
    optimizer steps; consensus and SGA: Hessian-vector products), with Adam, on the Dirac-GAN: the
    traced chunk keeps the second-order terms that eager autograd computes. Chunks of 6 steps (two
    records), to keep the cold compilation short."""
    monkeypatch.setattr(fuse, "MAX_UNROLL", 6)
    spec = {"game": {"name": "dirac", "loss": "nsgan"}, "rules": [rule],
            "optimizer": {"name": "adam", "lr": 0.05}, "steps": 24, "record_every": 3}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    _same(eager, fused)


def test_compiled_long_intervals_and_a_ragged_end():
    """Record intervals longer than a chunk (25 = 2 chunks of 10 + 5 eager steps + a compiled
    record) and a last interval of 7 steps, on the Dirac-GAN with alternating play."""
    spec = {"game": {"name": "dirac", "loss": "nsgan"}, "rules": ["alternating"],
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 57, "record_every": 25}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    assert sorted(set(fused.trajectories["step"])) == [0, 25, 50, 57]
    _same(eager, fused)


@pytest.mark.parametrize("spec, why", [
    ({"game": {"name": "gan1d", "discriminator": "learned", "gradient": "minibatch"},
      "rules": ["simultaneous"]}, r"the game draws random numbers \(not traced\)"),
    ({"game": "bilinear", "rules": [{"name": "best_response", "max_inner": 3}]},
     r"compilation failed: GuardOnDataDependentSymNode: Could not guard on data-dependent "
     r"expression "),
])
def test_falls_back_to_eager_and_says_why(spec, why):
    """A game that draws random numbers each step (the probe sees the stream's counter move), and a
    rule with a data-dependent inner loop (``best_response`` stops when every run's discriminator
    gradient is small: ``bool(done.all())`` on a fake tensor has no value, so tracing raises), are
    stepped eagerly even with ``--compile on``: same results, and ``stepping_note`` gives that
    reason, not any other failure."""
    spec = {"optimizer": {"name": "sgd", "lr": 0.05}, "steps": 40, "record_every": 10, **spec}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "eager").all()
    assert fused.runs["stepping_note"].str.match(why).all(), fused.runs["stepping_note"].iloc[0]
    _same(eager, fused, rtol=0)


def test_auto_does_not_compile_a_short_study():
    study, (batch,) = _batches(game="bilinear", rules=["simultaneous"], steps=30, record_every=10,
                               optimizer={"name": "sgd", "lr": 0.05})
    runs = run_batch(batch, study.thresholds, compile="auto").runs
    assert (runs["stepping"] == "eager").all() and runs["stepping_note"].str.contains("too short").all()
    assert (run_batch(batch, study.thresholds, compile="off").runs["stepping_note"] == "").all()


def test_chunk_length():
    assert [fuse.chunk_length(n) for n in (1, 7, 10, 25, 40, 97, 1000)] == [1, 7, 10, 5, 10, 10, 10]
    assert [fuse.records_per_chunk(n) for n in (1, 2, 3, 6, 10, 25)] == [10, 5, 3, 1, 1, 1]
    assert [fuse.chunk_length(n, 4) for n in (1, 4, 6, 10, 12)] == [1, 4, 3, 2, 4]
    assert [fuse.records_per_chunk(n, 4) for n in (1, 2, 3, 5)] == [4, 2, 1, 1]


def test_large_steps_unroll_fewer():
    """A chunk holds at most CHUNK_OPERATIONS operations of steps (10 here: the MAX_UNROLL of these
    tests), down to one step."""
    budget = fuse.CHUNK_OPERATIONS
    assert [fuse.unroll_for(ops) for ops in (0, 1, budget // 10, budget // 4, budget, 10 * budget)] \
        == [10, 10, 10, 4, 1, 1]


@pytest.mark.parametrize("budget", [1, 60])
def test_compiled_short_chunks_match_eager(monkeypatch, budget):
    """Steps of more operations than a chunk may hold: chunks of 1 step (and the record compiled
    on its own), or of 5 (half a record interval), step as eager stepping does, blow-ups included."""
    monkeypatch.setattr(fuse, "CHUNK_OPERATIONS", budget)
    built = []
    init = fuse._Compiled.__init__

    def spy(self, chunk, *args):
        built.append((chunk.what, chunk.k))
        init(self, chunk, *args)

    monkeypatch.setattr(fuse._Compiled, "__init__", spy)
    spec = {"game": {"name": "bilinear", "dim": 2, "A": "random"}, "rules": ["simultaneous"],
            "optimizer": {"name": "sgd", "lr": [0.05, 0.9]}, "steps": 200, "record_every": 10}
    ((eager, fused),) = _both(spec)
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    assert ("steps", 1 if budget == 1 else 5) in built and ("row", 0) in built
    assert fused.runs["stopped_step"].notna().any()
    _same(eager, fused)
