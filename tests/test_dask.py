"""The Dask backend: batches run on a dask.distributed cluster (here a LocalCluster on loopback,
started by the test) and the results equal those of a local run; clear errors without distributed,
without a scheduler, or with one that cannot be reached."""

from __future__ import annotations

import hashlib
import os
import socket
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import gamedyn
from gamedyn import StudyError, data, make_study, orchestrate, plugins, run_study
from gamedyn.results import TIMING_COLUMNS
from tests.conftest import ROOT

SPEC = {"name": "small", "game": ["bilinear", {"name": "dirac", "loss": ["gan", "wgan"]}],
        "rules": ["simultaneous", {"name": "alternating", "disc_steps": [1, 3]}],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "normal", "scale": 1.0},
        "seeds": 2, "steps": 40, "record_every": 2, "max_batch": 3,
        # a second part: a game whose players are p1 and p2, under rules that name them or not
        "parts": [{}, {"game": "tandem", "rules": [{"name": "lola", "alpha": [0.05, 0.1]},
                                                  {"name": "alternating", "first": "p1"}]}]}
TIMING = list(TIMING_COLUMNS)  # the documented timing columns


def test_dask_cluster_results_equal_a_local_run(tmp_path, cli):
    distributed = pytest.importorskip("distributed")
    study = make_study(SPEC)
    local = run_study(study, out=tmp_path / "local", progress=False)
    threads = torch.get_num_threads()  # the worker threads live in this process and set it to 1
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                      protocol="tcp", host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
            remote = run_study(study, out=tmp_path / "dask", progress=False, backend="dask",
                               scheduler=cluster.scheduler_address)
            path = tmp_path / "small.yaml"
            path.write_text(yaml.safe_dump(SPEC))
            out = cli("run", path, "--out", tmp_path / "cli", "--backend", "dask", "--scheduler",
                      cluster.scheduler_address, "--no-figures")
    finally:
        torch.set_num_threads(threads)
    assert remote.info["backend"] == "dask" and remote.info["computed"] == len(study.runs)
    assert remote.failures.empty
    assert len(list((tmp_path / "dask" / "small" / "parts").glob("*.runs.parquet"))) == \
        len(study.batches()) > 4
    pd.testing.assert_frame_equal(remote.runs.drop(columns=TIMING), local.runs.drop(columns=TIMING))
    pd.testing.assert_frame_equal(remote.trajectories, local.trajectories)
    assert out.returncode == 0, out.stderr
    assert f"{len(study.runs)} runs: {len(study.runs)} computed" in out.stdout and "(dask)" in out.stdout
    via_cli = gamedyn.load(tmp_path / "cli" / "small")
    pd.testing.assert_frame_equal(via_cli.runs.drop(columns=TIMING), local.runs.drop(columns=TIMING))


def test_without_distributed_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(StudyError, match=r"pip install 'gamedyn\[dask\]'"):
        run_study(make_study(SPEC), out=tmp_path, progress=False, backend="dask",
                  scheduler="tcp://127.0.0.1:8786")


def test_dask_needs_a_reachable_scheduler(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    with pytest.raises(StudyError, match="needs the address of a Dask scheduler"):
        run_study(make_study(SPEC), out=tmp_path, progress=False, backend="dask")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(orchestrate, "CONNECT_TIMEOUT", 1.0)
    with pytest.raises(StudyError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        run_study(make_study(SPEC), out=tmp_path, progress=False, backend="dask",
                  scheduler=f"tcp://127.0.0.1:{port}")
    with pytest.raises(StudyError, match="expected one of loky, dask"):
        run_study(make_study(SPEC), out=tmp_path, progress=False, backend="ray")


def test_cli_scheduler_without_dask_backend_is_refused(tmp_path, capsys):
    from gamedyn import cli

    assert cli.main(["run", str(tmp_path / "s.yaml"), "--scheduler", "tcp://h:8786"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler" in err and "--backend dask" in err


def test_plugin_files_travel_to_workers_without_a_shared_filesystem():
    """A worker on another machine has no study file folder: the client ships the plugin's source,
    and gamedyn.plugins.load then finds the module already imported instead of reading the file."""
    spec = "/nowhere/on/this/worker/my_plugin.py"
    name = "gamedyn_plugin_" + hashlib.sha1(spec.encode()).hexdigest()[:12]
    try:
        orchestrate.provide_plugins({spec: "ANSWER = 6 * 7\n"})
        plugins.load(spec)  # would raise FileNotFoundError if it tried to read the file
        assert sys.modules[name].ANSWER == 42 and sys.modules[name].__file__ == spec
    finally:
        sys.modules.pop(name, None)


def test_data_files_travel_to_workers_without_a_shared_filesystem(tmp_path, monkeypatch):
    """A module_gan study on ``{file: d.npz}`` runs on a cluster whose workers cannot read the file:
    after the study is validated and run locally, every read of an .npz from a path is refused
    (np.load given a path raises, the per-process cache is emptied), so the workers can only use
    the bytes the tasks carry, under the path the configuration names; the results (run ids
    included) equal the local run's."""
    distributed = pytest.importorskip("distributed")
    nets = str(ROOT / "studies" / "plugins" / "digits_mlp.py")
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).uniform(-1, 1, (40, 1, 8, 8)))
    spec = {"name": "files",
            "game": {"name": "module_gan", "data": {"file": str(path)}, "latent": {"dim": 4},
                     "generator": {"module": nets, "class": "Generator",
                                   "kwargs": {"latent": 4, "hidden": 8}},
                     "discriminator": {"module": nets, "class": "Discriminator",
                                       "kwargs": {"hidden": 8}},
                     "batch": 8, "eval_samples": 16},
            "rules": ["simultaneous", "alternating"],
            "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.5},
            "seeds": 2, "steps": 6, "record_every": 2, "dtype": "float32"}
    study = make_study(spec)
    assert len(study.batches()) == 2
    local = run_study(study, out=tmp_path / "local", progress=False)

    monkeypatch.setattr(data, "_PROVIDED", {})   # nothing provided yet (and nothing left behind)
    real_load = np.load

    def no_files(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            raise FileNotFoundError(f"no such file on this worker: {file}")
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", no_files)
    data._from_file.cache_clear()
    with pytest.raises(StudyError, match="not a readable .npz file"):   # the filesystem is closed
        data.load({"file": str(path)})
    threads = torch.get_num_threads()
    try:   # one thread per worker, as the README says: module_gan builds each run's networks under
        # torch.manual_seed, torch's global generator, which two batches in two threads would share
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                      protocol="tcp", host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            remote = run_study(study, out=tmp_path / "dask", progress=False, backend="dask",
                               scheduler=cluster.scheduler_address)
    finally:
        torch.set_num_threads(threads)
        data._from_file.cache_clear()
    assert remote.failures.empty and remote.info["computed"] == len(study.runs) == 4
    assert data._PROVIDED == {str(path): path.read_bytes()}   # what the tasks carried
    pd.testing.assert_frame_equal(remote.runs.drop(columns=TIMING), local.runs.drop(columns=TIMING))
    pd.testing.assert_frame_equal(remote.trajectories, local.trajectories)
