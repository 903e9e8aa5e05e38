"""User-defined rules from plugin modules: the worked example, its closed form, and import errors."""

import numpy as np
import pytest
import yaml

from gamedyn import StudyError, load, load_study, make_study

from .conftest import ROOT, series

EXAMPLE = ROOT / "studies" / "custom_rule.yaml"


def test_worked_example_matches_its_closed_form():
    """Every k steps: φ ← ((1 − α)I + αM^k) φ with M = [[1, −η], [η, 1]] on x·y."""
    study = load_study(EXAMPLE)
    from gamedyn.batch import run_batch

    eta, k, alpha = 0.3, 5, 0.5
    runs = [r for r in study.runs if r.columns["rule"] == "lookahead"
            and r.columns["optimizer.lr"] == eta and r.columns["rule.alpha"] == alpha]
    traj = run_batch(runs).trajectories
    x, y = series(traj, "gen.x[0]"), series(traj, "disc.y[0]")   # recorded every 5 = k steps
    M = np.array([[1, -eta], [eta, 1]])
    T = (1 - alpha) * np.eye(2) + alpha * np.linalg.matrix_power(M, k)
    z = np.array([1.0, 1.0])
    expected = [z]
    for _ in range(len(x) - 1):
        z = T @ z
        expected.append(z)
    np.testing.assert_allclose(np.stack([x, y], 1), np.array(expected), rtol=1e-10, atol=1e-300)
    assert max(abs(np.linalg.eigvals(T))) < 1


def test_worked_example_runs_from_the_cli_with_workers(tmp_path, cli, pool):
    out = cli("run", EXAMPLE, "-j", "2", "--out", tmp_path, "--quiet", "--no-figures")
    assert out.returncode == 0, out.stderr
    runs = load(tmp_path / "custom_rule").runs
    assert set(runs.loc[runs["rule"] == "simultaneous", "dynamics"]) == {"diverged"}
    assert set(runs.loc[runs["rule"] == "lookahead", "dynamics"]) == {"converged"}


BASE = {"name": "s", "game": "bilinear", "rules": ["simultaneous"], "optimizer": {"lr": 0.1}, "steps": 5}


def test_missing_plugin_file_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError) as e:
        make_study({**BASE, "plugins": ["nowhere.py"]}, source=str(tmp_path / "s.yaml"))
    assert e.value.key == "plugins[0]" and "no such file" in str(e.value)


def test_broken_plugin_names_the_error_and_line(tmp_path):
    (tmp_path / "broken.py").write_text("x = 1\ny = undefined_name\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "plugins": ["broken.py"]}))
    with pytest.raises(StudyError) as e:
        load_study(path)
    text = str(e.value)
    assert "plugins[0]" in text and "NameError" in text and "line 2" in text and "\n" not in text


def test_plugins_must_be_a_list():
    with pytest.raises(StudyError) as e:
        make_study({**BASE, "plugins": "lookahead.py"})
    assert e.value.key == "plugins"
