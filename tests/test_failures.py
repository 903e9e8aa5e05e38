"""Failure isolation: a batch that raises does not stop the others; its runs are recorded with their
traceback in failures.parquet, the CLI exits 1 saying how many failed, and a rerun retries only them.
Also the progress bar when stderr is not a terminal, and the end-of-run summary."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

import gamedyn
from gamedyn import StudyError, make_study, orchestrate, run_study
from gamedyn.results import FAILURE_COLUMNS, FAILURES_FILE, AllRunsFailed, RunsFailedWarning

from .conftest import explode_on

# explode_for_test (tests/plugin_rules.py, loaded by the subprocesses only) raises at step 3 while
# GAMEDYN_TEST_EXPLODE is set: 2 games x 2 rules = 4 batches of 2 runs, 2 batches fail
SPEC = {"name": "fragile", "game": ["bilinear", "dirac"], "rules": ["simultaneous", "explode_for_test"],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "constant", "scale": 1.0},
        "steps": 30, "plugins": ["tests.plugin_rules"]}


def test_a_raising_rule_fails_its_runs_only_and_a_rerun_retries_them(tmp_path, cli, monkeypatch,
                                                                     pool):
    path = tmp_path / "fragile.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    folder = tmp_path / "res" / "fragile"

    monkeypatch.setenv("GAMEDYN_TEST_EXPLODE", "1")  # inherited by the CLI and its loky workers
    out = cli("run", path, "--out", tmp_path / "res", "-j", "2")
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("gamedyn: error: 4 of 8 runs failed (2 batches; first: FloatingPointError: "
                           "exploded on purpose at step 3 [explode_for_test on bilinear])")
    assert str(folder / FAILURES_FILE) in last and "retries only the failed runs" in last
    assert "Traceback" not in out.stderr
    # progress on a non-terminal: plain lines, no carriage returns; a line per failed batch
    assert "\r" not in out.stderr
    assert "fragile: 100%" in out.stderr and "8/8" in out.stderr and "4 failed" in out.stderr
    assert out.stderr.count("failed: FloatingPointError: exploded on purpose") == 2
    # the summary: outcomes of the successful runs, counts, where things are
    assert "simultaneous" in out.stdout and "explode_for_test" not in out.stdout
    assert "8 runs: 4 computed, 0 already on disk, 4 failed;" in out.stdout
    assert f"results: {folder}" in out.stdout and "figure: " in out.stdout

    with pytest.warns(RunsFailedWarning, match="4 of 8 runs failed"):
        res = gamedyn.load(folder)
    assert list(res.runs["rule"]) == ["simultaneous"] * 4
    f = res.failures
    assert list(f.columns) == FAILURE_COLUMNS and len(f) == 4
    assert set(f["rule_label"]) == {"explode_for_test"} and f["batch_id"].nunique() == 2
    assert set(f["error"]) == {"FloatingPointError"}
    assert all("plugin_rules.py" in t and "raise FloatingPointError" in t for t in f["traceback"])
    assert len(set(f["run_id"]) | set(res.runs["run_id"])) == 8
    good = sorted((folder / "parts").iterdir())
    assert len(good) == 4  # 2 successful batches x (runs, trajectories)
    stamps = {p: p.stat().st_mtime_ns for p in good}

    monkeypatch.delenv("GAMEDYN_TEST_EXPLODE")  # the bug is fixed; the study is the same
    again = cli("run", path, "--out", tmp_path / "res", "--quiet")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "" and again.stderr == ""  # --quiet: no progress, no summary
    for p, t in stamps.items():
        assert p.stat().st_mtime_ns == t, f"{p.name} was recomputed"
    assert not (folder / FAILURES_FILE).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = gamedyn.load(folder)
    assert len(res.runs) == 8 and res.failures.empty


TINY = {"name": "tiny", "game": ["bilinear", "dirac"], "rules": ["simultaneous", "alternating"],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "constant", "scale": 1.0},
        "steps": 20}


def test_run_study_returns_the_successful_runs_and_the_failures(tmp_path, monkeypatch, capsys):
    study = make_study(TINY)
    monkeypatch.setattr(orchestrate, "run_batch", explode_on("alternating"))
    res = run_study(study, out=tmp_path, progress=False)
    assert set(res.runs["rule"]) == {"simultaneous"} and len(res.runs) == 4
    assert len(res.failures) == 4 and set(res.failures["error"]) == {"ZeroDivisionError"}
    assert res.failures["traceback"].str.contains("no alternating today").all()
    assert res.info | {"elapsed": 0} == {"runs": 8, "computed": 4, "on_disk": 0, "failed": 4,
                                         "batches": 4, "backend": "loky", "elapsed": 0}
    assert set(res.trajectories["run_id"].astype(str)) == set(res.runs["run_id"])
    from gamedyn import cli

    assert cli.main(["report", str(res.path)]) == 0  # reports the successful runs, notes the rest
    out = capsys.readouterr()
    counts, per_config = out.out.split("per configuration")
    assert "simultaneous" in counts and "alternating" not in counts
    alternating = [line.split() for line in per_config.splitlines() if "alternating" in line]
    assert len(alternating) == 4 and all(w[3:5] == ["0", "0"] for w in alternating)  # 0 runs; the
    # failed seeds: 0
    assert out.err.startswith("gamedyn: note: 4 of 8 runs failed")

    monkeypatch.undo()  # fixed: only the failed batches run again
    again = run_study(study, out=tmp_path, progress=False)
    assert (again.info["computed"], again.info["on_disk"], again.info["failed"]) == (4, 4, 0)
    assert len(again.runs) == 8 and again.failures.empty
    assert list(again.runs["run_id"]) == [r.run_id for r in study.runs]  # study order


def test_every_run_failing_is_an_error_naming_the_failures_table(tmp_path, monkeypatch, capsys):
    from gamedyn import cli

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "rules": ["alternating"]}))
    monkeypatch.setattr(orchestrate, "run_batch", explode_on("alternating"))
    assert cli.main(["run", str(path), "--out", str(tmp_path / "res"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every run failed" in err[0] and "4 of 4 runs failed" in err[0]
    assert FAILURES_FILE in err[0]
    folder = tmp_path / "res" / "tiny"
    with pytest.raises(AllRunsFailed):
        gamedyn.load(folder)
    assert issubclass(AllRunsFailed, StudyError)
    assert len(pd.read_parquet(folder / FAILURES_FILE)) == 4
    assert not (folder / "runs.parquet").exists()


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    run_study(make_study(TINY), out=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("tiny:   0%") and lines[-1].startswith("tiny: 100%")
    assert "8/8" in lines[-1] and "run/s" in lines[-1]
    assert len(lines) <= 3  # a line at start and end; one every 30 s between
    run_study(make_study(TINY), out=tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def test_a_worker_killed_under_the_study_is_a_clear_error(tmp_path, cli, monkeypatch, pool):
    path = tmp_path / "doomed.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "name": "doomed", "game": "bilinear",
                                    "rules": ["die_for_test"]}))
    monkeypatch.setenv("GAMEDYN_TEST_DIE", "1")
    out = cli("run", path, "--out", tmp_path / "res", "-j", "2", "--quiet")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "a worker process died" in lines[0] and "run again to resume" in lines[0]


@pytest.mark.parametrize("quiet", [False, True])
def test_the_resource_tracker_started_by_the_pool_keeps_its_leak_warnings_off_stderr(quiet):
    # a worker killed while holding a semaphore of loky's leaves it registered with the tracker,
    # which warns at the command's exit, after gamedyn's one-line error; here a leak is made by hand
    import subprocess
    import sys

    start = "from gamedyn import pool; pool._quiet_tracker(); " if quiet else ""
    code = (start + "from joblib.externals.loky.backend import resource_tracker as rt; "
            "rt.ensure_running(); rt.register('/gamedyn-test-leak', 'semlock')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert ("leaked semlock" in out.stderr) is not quiet, out.stderr


MIXED = {"name": "mixed", "game": {"name": "bilinear", "dim": 2}, "rules": ["simultaneous"],
         "optimizer": {"name": "sgd", "lr": 0.1},
         "init": [{"gen": {"x": 0.5}}, {"gen": {"x": [0.5, 1.0]}}], "steps": 20}


def test_a_study_mixing_a_scalar_and_a_list_init_writes_its_tables(tmp_path, capsys):
    from gamedyn import cli

    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(MIXED))
    assert cli.main(["run", str(path), "--out", str(tmp_path), "--quiet", "--no-figures"]) == 0
    assert capsys.readouterr().err == ""
    res = gamedyn.load(tmp_path / "mixed")
    assert list(res.runs["init.gen.x"]) == ["0.5", "[0.5, 1.0]"] and res.failures.empty
    assert sorted(p.name.split(".")[1] for p in (tmp_path / "mixed" / "parts").iterdir()) == \
        ["runs", "trajectories"]


def _parts(folder) -> list[str]:
    return sorted(p.name for p in (folder / "parts").iterdir())


@pytest.mark.parametrize("where", ["writing the runs part", "renaming the runs part"])
def test_an_error_between_the_two_part_writes_fails_that_batch_and_leaves_no_orphan(
        tmp_path, monkeypatch, capsys, where):
    """A fault after the trajectories part is written (its runs part's write raises, or the rename
    that puts the runs part in place does): the batch fails like one that raised (failures.parquet,
    exit 1, one line), neither part of it stays on disk, the other batches are kept, and a rerun
    computes only that batch and ends with the tables of an undisturbed run."""
    from gamedyn import cli, results

    study = make_study(TINY)
    doomed = orchestrate.batch_id(study.batches()[1])
    if where == "writing the runs part":
        real_to_parquet = pd.DataFrame.to_parquet

        def to_parquet(self, path, *args, **kwargs):
            name = Path(path).name
            if name.startswith(f".{doomed}.runs.parquet"):
                assert (Path(path).parent / f".{doomed}.trajectories.parquet").exists() or any(
                    p.name.startswith(f".{doomed}.trajectories.parquet")
                    for p in Path(path).parent.iterdir())  # the trajectories part is written
                raise OSError(28, "No space left on device")
            return real_to_parquet(self, path, *args, **kwargs)

        monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
        error = "OSError"
    else:
        real_replace = os.replace

        def replace(src, dst):
            if Path(dst).name == f"{doomed}.runs.parquet":
                assert (Path(dst).parent / f"{doomed}.trajectories.parquet").exists()
                raise PermissionError(13, "Permission denied", str(dst))
            return real_replace(src, dst)

        monkeypatch.setattr(results.os, "replace", replace)
        error = "PermissionError"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "res"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet", "--no-figures"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"gamedyn: error: 2 of 8 runs failed (1 batch; first: {error}: "
                             f"writing the batch's results failed: ")
    folder = out / "tiny"
    assert not any(p.startswith(doomed) or p.endswith(".tmp") for p in _parts(folder))
    assert len(_parts(folder)) == 6  # the 3 other batches' pairs
    failures = pd.read_parquet(folder / FAILURES_FILE)
    assert set(failures["batch_id"]) == {doomed} and set(failures["error"]) == {error}
    assert failures["traceback"].str.contains("write_part").all()
    with pytest.warns(RunsFailedWarning):
        assert len(gamedyn.load(folder).runs) == 6

    monkeypatch.undo()  # the disk has room again: only that batch runs
    again = run_study(study, out=out, progress=False)
    assert (again.info["computed"], again.info["on_disk"], again.info["failed"]) == (2, 6, 0)
    assert not (folder / FAILURES_FILE).exists() and len(_parts(folder)) == 8
    ref = run_study(study, out=tmp_path / "ref", progress=False)
    drop = list(results.TIMING_COLUMNS)
    pd.testing.assert_frame_equal(again.runs.drop(columns=drop), ref.runs.drop(columns=drop))
    pd.testing.assert_frame_equal(again.trajectories, ref.trajectories)


def test_a_trajectories_part_left_alone_by_a_killed_run_is_removed_and_recomputed(
        tmp_path, monkeypatch):
    """kill -9 between the two renames of a pair leaves a trajectories part without its runs part:
    the next run removes it (under the lock, before anything else) and computes that batch."""
    study = make_study(TINY)
    first = run_study(study, out=tmp_path, progress=False)
    folder = first.path
    bid = orchestrate.batch_id(study.batches()[0])
    (folder / "parts" / f"{bid}.runs.parquet").unlink()  # as if killed before its rename
    orphan = folder / "parts" / f"{bid}.trajectories.parquet"
    assert orphan.exists()
    with monkeypatch.context() as mp:  # the batch fails this time: its orphan must still go
        mp.setattr(orchestrate, "run_batch", explode_on("simultaneous"))
        failed = run_study(study, out=tmp_path, progress=False)
    assert set(failed.failures["batch_id"]) == {bid} and not orphan.exists()
    assert len(_parts(folder)) == 6
    again = run_study(study, out=tmp_path, progress=False)
    assert (again.info["computed"], again.info["on_disk"]) == (2, 6)
    assert len(_parts(folder)) == 8
    pd.testing.assert_frame_equal(again.trajectories, first.trajectories)
