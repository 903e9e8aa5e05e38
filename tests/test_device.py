"""``--device``: refused clearly where there is no such device; on a GPU, the same results as on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gamedyn.batch import run_batch
from gamedyn.cli import main
from gamedyn.study import make_study

SPEC = {"name": "device", "game": {"name": "dirac", "loss": "gan"}, "rules": ["simultaneous", "alternating"],
        "optimizer": {"name": "sgd", "lr": 0.1}, "init": {"dist": "normal", "scale": 1.0},
        "seeds": 3, "steps": 200, "record_every": 10}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ngame: bilinear\nrules: [simultaneous]\noptimizer: {name: sgd}\nsteps: 10\n")
    assert main(["run", str(path), "--out", str(tmp_path), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and "no CUDA device" in err and "Traceback" not in err


def test_unknown_device_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ngame: bilinear\nrules: [simultaneous]\noptimizer: {name: sgd}\nsteps: 10\n")
    assert main(["run", str(path), "--out", str(tmp_path), "--device", "tpu9", "--quiet"]) == 2
    assert "--device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("compile", ["off", "on"])
def test_cuda_gives_the_cpu_results(compile):
    study = make_study(SPEC)
    for batch in study.batches():
        cpu = run_batch(batch, study.thresholds, compile="off")
        gpu = run_batch(batch, study.thresholds, device="cuda", compile=compile)
        np.testing.assert_allclose(gpu.trajectories["value"], cpu.trajectories["value"], rtol=1e-9)
        assert (gpu.runs["dynamics"] == cpu.runs["dynamics"]).all()
