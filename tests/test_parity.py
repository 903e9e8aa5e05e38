"""Qualitative parity with the papers, kept as study files (studies/parity/*.yaml): each study states
what each rule or regularizer should do under ``expect:``; one test per expectation."""

from functools import cache

import pandas as pd
import pytest

from gamedyn import expect, load_study
from gamedyn.batch import run_batch

from .conftest import ROOT

STUDIES = sorted((ROOT / "studies" / "parity").glob("*.yaml"))
CASES = [(path, i) for path in STUDIES for i in range(len(load_study(path).spec["expect"]))]


@cache
def outcome(path):
    study = load_study(path)
    runs = pd.concat([run_batch(b, study.thresholds).runs for b in study.batches()])
    return study, runs


def test_there_are_parity_studies():
    assert {p.stem for p in STUDIES} >= {"bilinear", "dirac"}


@pytest.mark.parametrize(("path", "index"), CASES,
                         ids=[f"{p.stem}-{load_study(p).spec['expect'][i]['where']}" for p, i in CASES])
def test_expectation_holds(path, index):
    study, runs = outcome(path)
    bad = expect.check(runs, [study.spec["expect"][index]])
    assert bad.empty, bad.merge(runs[["run_id", "rule_label", "regularizer_label", "growth_rate"]],
                                on="run_id", how="left").to_string()


def test_a_false_expectation_is_caught():
    study, runs = outcome(STUDIES[0])
    bad = expect.check(runs, [{"where": {"rule": "simultaneous"}, "dynamics": "converged"},
                              {"where": {"rule": "no_such_rule"}, "dynamics": "converged"}])
    assert set(bad["expectation"]) == {0, 1} and (bad["got"] == "diverged").sum() == 2
