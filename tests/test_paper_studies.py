"""The paper's study files: they validate, name registered figures, and (shrunk) run end to end
and draw their figures. The full studies run from the CLI in the slow test."""

from pathlib import Path

import pytest
import yaml

from gamedyn import load_study, make_study, run_study
from gamedyn.figures import FIGURES
from gamedyn.report import write_report
from tests.conftest import ROOT

STUDIES = sorted((ROOT / "studies").glob("paper_*.yaml"))


def test_there_is_a_study_per_claim():
    names = {p.stem for p in STUDIES}
    assert {"paper_sce", "paper_sce_stale", "paper_generator_costs", "paper_learned_disc",
            "paper_variance", "paper_cost_figure", "paper_play"} <= names


def _shrink(value, keep=2):
    """Grid lists cut to their first and last values; nested mappings and lists recursively."""
    if isinstance(value, dict):
        return {k: _shrink(v, keep) for k, v in value.items()}
    if isinstance(value, list) and value and not isinstance(value[0], dict | list):
        return value if len(value) <= keep else [value[0], value[-1]]
    if isinstance(value, list):
        return [_shrink(v, keep) for v in value]
    return value


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_validates_and_runs_shrunk_with_its_figure(path: Path, tmp_path):
    study = load_study(path)
    for fig in study.spec["figures"]:
        FIGURES.get(fig)
    spec = yaml.safe_load(path.read_text())
    spec["game"] = _shrink(spec["game"])
    for game in spec["game"] if isinstance(spec["game"], list) else [spec["game"]]:
        game.update(nodes=101, width=10.0)          # coarse quadrature: this tests plumbing
        if "mc_samples" in game:
            game["mc_samples"] = 500
    if path.stem == "paper_play":                  # 28 batches: keep an estimator and a GAN
        spec["game"] = [spec["game"][0], spec["game"][-1]]
    spec["steps"] = min(spec["steps"], 4)
    spec["record_every"] = 2
    spec["seeds"] = 2
    if isinstance(spec.get("init"), list):
        spec["init"] = spec["init"][:3]
    results = run_study(make_study(spec), out=tmp_path, progress=False)
    assert len(results.failures) == 0
    for png in write_report(results):
        assert png.exists() and png.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_full_study_runs_from_the_cli(path: Path, tmp_path, cli):
    done = cli("run", path, "--out", tmp_path, "--quiet", "-j", "2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / path.stem / "figures" / f"{path.stem}.png").exists()
