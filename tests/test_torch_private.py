"""The private torch API fusion uses lives in gamedyn/torch_private.py, which says when it is
missing or untested instead of falling back silently."""

from __future__ import annotations

import functools
import subprocess
import sys

import torch

from gamedyn import make_study, torch_private
from gamedyn.batch import run_batch


def test_this_torch_has_every_name_and_is_tested():
    assert torch_private.missing() == ""
    assert torch_private.missing(torch_private.COUNTING) == ""
    assert torch_private.untested() == ""


def test_a_missing_name_and_an_untested_version_are_named(monkeypatch):
    note = torch_private.missing((("torch", "no_such_thing"), ("torch._ops", "OpOverload")))
    assert note.startswith("fusion needs torch's private torch.no_such_thing, absent in torch ")
    assert "OpOverload" not in note and torch.__version__ in note and "tested: 2.13" in note
    monkeypatch.setattr(torch_private, "TESTED", ("1.0",))
    assert torch_private.untested() == f"torch {torch.__version__} is untested for fusion (tested: 1.0)"


def test_count_ops_counts_aten_operations_and_returns_the_result():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    out, n = torch_private.count_ops(lambda: (a + b) * b)
    assert n == 2 and out.tolist() == [12.0, 24.0]
    x = torch.tensor([2.0], requires_grad=True)  # forward mul, and autograd's backward mul
    (g,), n = torch_private.count_ops(lambda: torch.autograd.grad((x * x).sum(), x))
    assert g.item() == 4.0 and n >= 3


def test_counting_does_not_import_dynamo():
    """``auto`` counts an eager step in every batch: importing Dynamo for it cost 1.3 s a worker."""
    code = ("import sys, torch; from gamedyn import torch_private as tp; "
            "x = torch.ones(2, requires_grad=True); "
            "tp.count_ops(lambda: torch.autograd.grad((x * x).sum(), x)); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_private_api_the_batch_steps_eagerly_and_says_why(monkeypatch):
    study = make_study({"name": "t", "game": "bilinear", "rules": ["simultaneous"], "steps": 30,
                        "record_every": 10, "optimizer": {"name": "sgd", "lr": 0.1}})
    (batch,) = study.batches()
    eager = run_batch(batch, study.thresholds, compile="off")
    why = "fusion needs torch's private torch._inductor.compile_fx.compile_fx_inner, absent"
    monkeypatch.setattr(torch_private, "missing", lambda names=None: "" if names else why)
    runs = run_batch(batch, study.thresholds, compile="on").runs
    assert (runs["stepping"] == "eager").all() and (runs["stepping_note"] == why).all()
    assert runs["final_distance"].equals(eager.runs["final_distance"])


def test_compile_graph_skips_inductors_isa_probes_and_retries_with_them_on_failure(monkeypatch):
    """While gamedyn compiles, Inductor takes the CPU's vector instructions as given (no test
    programs built); a compilation that fails so is retried with the probes; both settings are
    restored after; GAMEDYN_ISA_PROBES=1 leaves Inductor's probing as it is."""
    from torch._inductor import compile_fx, config, cpu_vec_isa

    probe = cpu_vec_isa.VecISA.check_build
    seen = []

    def fake_compile(gm, fakes):
        seen.append((config.cpp.vec_isa_ok, cpu_vec_isa.VecISA.check_build is probe))
        if len(seen) == 1 and fail:
            raise RuntimeError("g++: error: unrecognized command-line option '-mamx-tile'")
        return "compiled"

    monkeypatch.setattr(compile_fx, "compile_fx_inner", fake_compile)
    fakes = torch_private.fake_tensors([torch.zeros(2)])
    fail = False
    assert torch_private.compile_graph(None, fakes) == "compiled"
    assert seen == [(True, False)]                      # no probes while compiling
    avx2 = next(i for i in cpu_vec_isa.supported_vec_isa_list if str(i) == "avx2")
    fail, seen[:] = True, []
    monkeypatch.setattr(cpu_vec_isa.VecAVX2, "__bool__", functools.cache(lambda self: False))
    bool(avx2)                                          # an answer cached (as while not probing)
    assert torch_private.compile_graph(None, fakes) == "compiled"
    assert seen == [(True, False), (None, True)]        # the retry probes,
    assert cpu_vec_isa.VecAVX2.__bool__.cache_info().currsize == 0   # forgetting cached answers
    assert config.cpp.vec_isa_ok is None and cpu_vec_isa.VecISA.check_build is probe
    fail, seen[:] = False, []
    monkeypatch.setenv("GAMEDYN_ISA_PROBES", "1")
    torch_private.compile_graph(None, fakes)
    assert seen == [(None, True)]
