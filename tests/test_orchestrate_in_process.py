"""A study too small for a process pool to pay runs in the main process whatever -j asks
(gamedyn.orchestrate.in_process); larger studies and games with large players get the workers."""

from __future__ import annotations

from pathlib import Path

from gamedyn.orchestrate import in_process
from gamedyn.study import load_study, make_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def _study(**spec):
    return make_study({"name": "p", "game": "bilinear", "rules": ["simultaneous"],
                       "optimizer": {"name": "sgd", "lr": 0.1}, **spec})


def test_the_quickstart_runs_in_process_and_a_large_study_on_workers(monkeypatch):
    quick = load_study(STUDIES / "quickstart.yaml").batches()
    assert in_process(quick, 2) and in_process(quick, -1) and in_process(quick, 1)
    # 10 structures of 1,000 runs x 10,000 steps: minutes of stepping
    big = _study(optimizer={"name": "sgd", "lr": [0.01 * i for i in range(1, 11)]}, seeds=1000,
                 steps=10_000, record_every=10).batches()
    assert not in_process(big, 2) and in_process(big, 1)
    monkeypatch.setenv("GAMEDYN_ALWAYS_POOL", "1")
    assert not in_process(quick, 2) and in_process(quick, 1)


def test_long_studies_and_large_players_get_workers():
    two = ["simultaneous", {"name": "alternating", "first": "gen"}]
    long = _study(rules=two, steps=100_000).batches()
    assert not in_process(long, 2)   # 300,000 evaluations: ~15 s alone, ~10 s on two workers
    assert in_process(_study(rules=two, steps=1_000).batches(), 2)
    assert in_process(_study(steps=100_000).batches(), 2)   # one batch: nothing to share
    ring = _study(game="mog_ring", rules=two, steps=10).batches()
    assert not in_process(ring, 2)   # neural players: no price for their steps


def test_the_command_and_its_worker_share_a_small_study_with_the_same_tables(tmp_path, monkeypatch):
    """A small study with -j 2: this process steps the shortest batches, the started worker (once
    ready) the longest, and writes them itself; the tables equal those of -j 1."""
    import time

    import pandas as pd

    from gamedyn import orchestrate, pool, run_study

    study = _study(game={"name": "dirac", "loss": "gan"},
                   rules=["simultaneous", {"name": "alternating", "first": "gen"}, "extragradient",
                          {"name": "alternating", "disc_steps": 3}],
                   optimizer={"name": "sgd", "lr": [0.1, 0.2]}, seeds=2, steps=400)
    assert in_process(study.batches(), 2) and len(study.batches()) == 4
    one = run_study(study, out=tmp_path / "one", progress=False)
    pool.prestart(1)
    while not pool.ready():       # the worker is ready: it takes the longest batch at once
        time.sleep(0.05)
    here = []
    real = orchestrate.run_batch
    monkeypatch.setattr(orchestrate, "run_batch", lambda *a, **k: here.append(1) or real(*a, **k))
    two = run_study(study, out=tmp_path / "two", jobs=2, progress=False)
    assert 0 < len(here) < 4      # some batches here, the others in the worker
    timing = ["wall_time", "compile_time"]
    pd.testing.assert_frame_equal(one.runs.drop(columns=timing), two.runs.drop(columns=timing))
    pd.testing.assert_frame_equal(one.trajectories, two.trajectories)
    pool.stop()


_KEPT: list[bytearray] = []


def _grow_and_wait(megabytes: int) -> int:
    """In a worker: keep ``megabytes`` MB alive (as torch's allocator keeps a batch's pages), wait
    past loky's memory check interval, and return the worker's pid."""
    import os
    import time

    _KEPT.append(bytearray(megabytes << 20))
    for i in range(0, len(_KEPT[-1]), 4096):   # touch every page: resident, not just reserved
        _KEPT[-1][i] = 1
    time.sleep(1.2)
    return os.getpid()


def test_a_worker_that_keeps_its_memory_is_not_restarted():
    """loky restarts a worker whose memory grew by 300 MB (with a warning to the user); gamedyn's
    workers keep up to a batch's budget by design, so the pool keeps them."""
    from gamedyn import pool

    ex = pool.executor(1)
    pids = [ex.submit(_grow_and_wait, mb).result() for mb in (1, 400, 1, 1)]
    pool.stop()
    assert len(set(pids)) == 1, pids
