"""Never lose work: a study killed with ``kill -9`` resumes without recomputing finished batches and
ends with the tables of an uninterrupted run; one process at a time works in a results folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import gamedyn
from gamedyn import StudyError, make_study, run_study
from gamedyn.results import LOCK_FILE, TIMING_COLUMNS, ResultsFolder

from .conftest import ROOT

# 8 batches of 2 runs; the plugin's rule sleeps GAMEDYN_TEST_NAP s per step, so the killed run lasts
# long enough to be caught half done however fast gamedyn steps (the numbers do not depend on it)
KILL_SPEC = {"name": "killme", "game": "bilinear", "rules": ["sleepy_for_test"],
             "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "normal", "scale": 1.0},
             "seeds": 8, "steps": 60, "max_batch": 2, "plugins": ["tests.plugin_rules"]}  # 8 batches
TIMING = list(TIMING_COLUMNS)  # the documented timing columns


def _gamedyn(args: list, nap: float = 0.0, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GAMEDYN_TEST_NAP": str(nap)}
    return subprocess.Popen([sys.executable, "-m", "gamedyn.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _group_is_dead(pgid: int) -> bool:
    """Every process of the group is gone or a zombie (nothing reaps orphans in some containers)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


def _runs_parts(parts: Path) -> list[Path]:
    return sorted(parts.glob("*.runs.parquet")) if parts.is_dir() else []


def test_kill_minus_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    study_file = tmp_path / "killme.yaml"
    study_file.write_text(yaml.safe_dump(KILL_SPEC))
    # the reference, uninterrupted, in another folder (at the same time, to save wall time)
    reference = _gamedyn(["run", study_file, "--out", tmp_path / "ref", "-j", "1", "--quiet",
                          "--no-figures"])
    killed = _gamedyn(["run", study_file, "--out", tmp_path / "res", "-j", "2", "--quiet",
                       "--no-figures"], nap=0.02, start_new_session=True)
    folder = tmp_path / "res" / "killme"
    parts = folder / "parts"
    deadline = time.monotonic() + 90
    while not _runs_parts(parts):
        assert killed.poll() is None, f"the study ended before it could be killed: {killed.stderr.read()}"
        assert time.monotonic() < deadline, "no batch finished within 90 s"
        time.sleep(0.01)

    # while it runs, the folder is locked, and the lock names the process holding it
    with pytest.raises(StudyError) as busy:
        with ResultsFolder(tmp_path / "res", "killme").locked():
            pass
    assert str(folder) in str(busy.value) and f"pid {killed.pid}" in str(busy.value)

    os.killpg(killed.pid, signal.SIGKILL)  # the CLI and its loky workers
    assert killed.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while not _group_is_dead(killed.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_is_dead(killed.pid)

    done = _runs_parts(parts)
    assert 1 <= len(done) < 8, "kill -9 came too late to test resuming"
    finished = [p for d in done for p in (d, parts / d.name.replace(".runs.", ".trajectories."))]
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    # what a kill in the middle of a write leaves behind: temporary files, never read, removed
    (parts / ".0123456789ab.runs.parquet.x1y2z3.tmp").write_bytes(b"half a parquet file")
    (folder / ".runs.parquet.q9w8e7.tmp").write_bytes(b"")

    resumed = _gamedyn(["run", study_file, "--out", tmp_path / "res", "-j", "1", "--no-figures"])
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "Traceback" not in err
    m = re.search(r"(\d+) runs: (\d+) computed, (\d+) already on disk, 0 failed", out)
    assert m, out
    assert int(m[1]) == 16 and int(m[3]) == 2 * len(done) and int(m[2]) == 16 - 2 * len(done)
    for p, t in stamps.items():
        assert p.stat().st_mtime_ns == t, f"{p.name} was recomputed"
    assert not list(folder.rglob("*.tmp")), "temporary files of the killed run were left behind"
    assert (folder / LOCK_FILE).exists()  # the lock file stays; the lock itself died with its process

    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    ref = gamedyn.load(tmp_path / "ref" / "killme")
    got = gamedyn.load(folder)
    assert len(got.runs) == 16 and got.failures.empty
    pd.testing.assert_frame_equal(got.runs.drop(columns=TIMING), ref.runs.drop(columns=TIMING))
    pd.testing.assert_frame_equal(got.trajectories, ref.trajectories)


SPEC = {"name": "tiny", "game": "bilinear", "rules": ["simultaneous"],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "constant", "scale": 1.0},
        "steps": 20}


def test_a_second_process_on_the_same_folder_is_refused_and_changes_nothing(tmp_path, cli):
    study = make_study(SPEC)
    folder = ResultsFolder(tmp_path, "tiny")
    with folder.locked():
        with pytest.raises(StudyError) as e:  # another run in this process: refused too
            run_study(study, out=tmp_path, progress=False)
        assert f"pid {os.getpid()}" in str(e.value)
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(SPEC))
        out = cli("run", path, "--out", tmp_path)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert str(folder.path) in lines[0] and f"pid {os.getpid()}" in lines[0]
        assert "in use by another gamedyn process" in lines[0]
        assert sorted(p.name for p in folder.path.iterdir()) == [LOCK_FILE]
    res = run_study(study, out=tmp_path, progress=False)  # released: the folder is usable again
    assert len(res.runs) == 2


def test_lock_is_refused_in_a_foreign_folder_without_touching_it(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="not a gamedyn results folder"):
        with ResultsFolder(tmp_path, "tiny").locked():
            pass
    assert os.listdir(tmp_path / "tiny") == ["notes.txt"]


def test_fresh_replaces_a_changed_study_but_keeps_the_lock(tmp_path):
    run_study(make_study(SPEC), out=tmp_path, progress=False)
    res = run_study(make_study({**SPEC, "steps": 10}), out=tmp_path, fresh=True, progress=False)
    assert res.trajectories["step"].max() == 10
    assert len(list((tmp_path / "tiny" / "parts").iterdir())) == 2
    assert (tmp_path / "tiny" / LOCK_FILE).exists()


def test_a_damaged_part_is_removed_and_named(tmp_path):
    study = make_study(SPEC)
    run_study(study, out=tmp_path, progress=False)
    part = next((tmp_path / "tiny" / "parts").glob("*.runs.parquet"))
    part.write_bytes(b"not parquet")  # damage outside gamedyn's atomic writes
    with pytest.raises(StudyError, match="could not be read") as e:
        run_study(study, out=tmp_path, progress=False)
    assert part.name in str(e.value) and not part.exists()
    assert len(run_study(study, out=tmp_path, progress=False).runs) == 2
