"""Shared helpers: build and step small studies without touching the filesystem."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gamedyn.batch import run_batch
from gamedyn.study import make_study

ROOT = Path(__file__).resolve().parents[1]


def build(registry, name, configs, dtype=torch.float64):
    """A component (game, rule, optimizer, regularizer) built directly from per-run configs."""
    cls = registry.get(name)
    return cls.build([cls.resolve(c, name) for c in configs], dtype)


def explode_on(rule: str, message: str = "no {rule} today"):
    """A ``run_batch`` that raises ZeroDivisionError(``message``) for the batches of ``rule`` (and
    runs the others), to monkeypatch into ``gamedyn.orchestrate`` (in this process: jobs=1)."""
    from gamedyn import orchestrate

    real = orchestrate.run_batch

    def exploding(runs, *args, **kwargs):
        if runs[0].config["rule"]["name"] == rule:
            raise ZeroDivisionError(message.format(rule=rule))
        return real(runs, *args, **kwargs)

    return exploding


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch) -> Path:
    """gamedyn's cache (the data's classifiers) in a folder of this test session, never the
    user's ~/.cache; inherited by subprocesses."""
    folder = tmp_path_factory.getbasetemp() / "gamedyn-cache"
    monkeypatch.setenv("GAMEDYN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def pool(monkeypatch):
    """Worker processes even for a study small enough to run in the main process
    (``gamedyn.orchestrate.in_process``): for the tests of the worker path. Inherited by ``cli``."""
    monkeypatch.setenv("GAMEDYN_ALWAYS_POOL", "1")


@pytest.fixture
def one_thread():
    """Tiny problems: intra-op threads only add overhead (a lot of it on a busy machine). Modules
    of such tests use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulate(game, rule, lr=0.1, init=None, steps=100, record_every=1, seeds=1, compile="off",
             **extra):
    """Run a one-rule study in memory; returns (runs DataFrame, trajectories DataFrame).

    Stepped eagerly unless ``compile`` says otherwise (``"on"``: fused wherever it works): never
    ``"auto"``, whose choice depends on how fast this machine steps, so that a test exercises the
    path it means to on every machine."""
    import pandas as pd

    if compile not in ("off", "on"):
        raise ValueError(f"simulate: compile={compile!r}; pin the path, 'off' or 'on'")

    spec = {"name": "t", "game": game, "rules": [rule], "optimizer": {"name": "sgd", "lr": lr},
            "init": init or {"dist": "constant", "scale": 1.0}, "steps": steps,
            "record_every": record_every, "seeds": seeds, **extra}
    study = make_study(spec)
    results = [run_batch(b, study.thresholds, compile=compile) for b in study.batches()]
    return (pd.concat([r.runs for r in results], ignore_index=True),
            pd.concat([r.trajectories for r in results], ignore_index=True))


#: Run-axis invariance tests ("a run alone equals the same run in a batch") in modules that do not
#: mark themselves: :func:`pytest_collection_modifyitems` marks them ``invariance``, so that CI's
#: ``pytest -m "invariance and not slow"`` reruns them under each ATEN_CPU_CAPABILITY. A name here
#: that its collected module no longer has is a collection error (a renamed test would otherwise
#: drop out of those reruns unnoticed).
INVARIANCE_TESTS = {
    "test_mog.py": ("test_a_neural_run_trained_in_a_batch_of_8_equals_it_trained_alone",
                    "test_fast_streams_are_normal_uniform_and_per_run"),
    "test_random.py": ("test_a_runs_stream_depends_only_on_its_key",),
    "test_rules.py": ("test_nonfinite_run_ends_cleanly_and_leaves_its_batch_mates_alone",),
    "test_stochastic.py": ("test_noise_is_per_run_and_invariant_to_batching_and_recording",),
    "test_prediction.py": ("test_predicting_cgd_on_a_stochastic_game_leaves_the_training_stream_alone",),
}


def pytest_collection_modifyitems(config, items):
    seen: dict[str, set[str]] = {}
    for item in items:
        module = item.path.name if item.path.parent == Path(__file__).parent else None
        if module in INVARIANCE_TESTS:
            name = item.originalname if hasattr(item, "originalname") else item.name
            seen.setdefault(module, set()).add(name)
            if name in INVARIANCE_TESTS[module]:
                item.add_marker(pytest.mark.invariance)
    for module, names in seen.items():
        missing = set(INVARIANCE_TESTS[module]) - names
        if missing and not (config.getoption("keyword") or config.getoption("deselect")
                            or _selected_by_id(config)):
            raise pytest.UsageError(f"tests/conftest.py INVARIANCE_TESTS names {sorted(missing)} in "
                                    f"{module}, which has no such test: update the table")


def _selected_by_id(config) -> bool:
    """Whether the command line picked tests by node id (``file.py::test``): then a module's other
    tests are not collected, and their absence says nothing."""
    return any("::" in str(a) for a in config.args)


def series(traj, variable, run_id=None):
    """One variable's values over steps (of one run, or the only run)."""
    t = traj[traj["variable"].astype(str) == variable]
    if run_id is not None:
        t = t[t["run_id"].astype(str) == run_id]
    return np.asarray(t.sort_values("step")["value"], dtype=float)


@pytest.fixture
def cli():
    """Run ``python -m gamedyn.cli`` in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args, cwd=None):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "gamedyn.cli", *map(str, args)],
                              capture_output=True, text=True, cwd=cwd, env=env, timeout=300)

    return run
