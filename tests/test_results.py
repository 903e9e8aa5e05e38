"""Results on disk: tidy tables, resume without recomputation, refusing another study's folder, CLI."""

import os

import pandas as pd
import pytest
import yaml

import gamedyn
from gamedyn import StudyError, make_study, run_study

SPEC = {"name": "small", "game": ["bilinear", {"name": "dirac", "loss": ["gan", "wgan"]}],
        "rules": ["simultaneous", {"name": "alternating", "first": "gen", "disc_steps": [1, 5]}],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "init": {"dist": "constant", "scale": 1.0},
        "steps": 200, "record_every": 2}


def test_tables_are_tidy_and_named_as_the_study(tmp_path):
    res = run_study(make_study(SPEC), out=tmp_path, progress=False)
    runs = res.runs
    assert len(runs) == 3 * 3 * 2
    for col in ["run_id", "study", "game", "rule", "seed", "optimizer.lr", "optimizer.momentum",
                "rule.disc_steps", "rule.first", "game.loss", "game.dim", "dynamics",
                "final_distance", "growth_rate", "period", "wall_time", "grad_evals_per_step"]:
        assert col in runs, col
    assert set(runs["dynamics"]) <= {"converged", "cycling", "diverged", "drifting"}
    traj = res.trajectories
    assert list(traj.columns) == ["run_id", "step", "variable", "value"]
    assert set(traj["run_id"].astype(str)) == set(runs["run_id"])
    assert {"gen.theta", "disc.psi", "distance", "loss.gen", "grad_norm.disc"} <= set(traj["variable"])
    n_steps = traj[traj["run_id"] == runs["run_id"][0]]["step"].nunique()
    assert n_steps == 101
    loaded = gamedyn.load(tmp_path / "small")
    pd.testing.assert_frame_equal(loaded.runs, runs)
    assert loaded.study["name"] == "small"
    counts = loaded.runs.groupby(["game", "rule"])["dynamics"].value_counts()
    assert counts.sum() == len(runs)


def test_rerun_does_not_recompute_finished_batches(tmp_path):
    study = make_study(SPEC)
    run_study(study, out=tmp_path, progress=False)
    parts = sorted((tmp_path / "small" / "parts").iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    victim = [p for p in parts if p.name.endswith(".runs.parquet")][0]
    victim.unlink()  # as if the study had been killed before that batch finished
    again = run_study(study, out=tmp_path, progress=False)
    assert len(again.runs) == len(study.runs)
    for p, t in stamps.items():
        if p != victim and p.name.split(".")[0] != victim.name.split(".")[0]:
            assert p.stat().st_mtime_ns == t, p
    assert victim.exists()


def test_changed_study_under_the_same_name_is_refused_unless_fresh(tmp_path):
    run_study(make_study(SPEC), out=tmp_path, progress=False)
    changed = make_study({**SPEC, "steps": 100})
    with pytest.raises(StudyError) as e:
        run_study(changed, out=tmp_path, progress=False)
    assert "--fresh" in str(e.value) and "different study" in str(e.value)
    res = run_study(changed, out=tmp_path, fresh=True, progress=False)
    assert res.trajectories["step"].max() == 100


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "thesis.tex").write_text("precious")
    with pytest.raises(StudyError):
        run_study(make_study(SPEC), out=tmp_path, progress=False)
    assert (tmp_path / "small" / "thesis.tex").read_text() == "precious"


def test_load_of_a_non_results_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match="not a gamedyn results folder"):
        gamedyn.load(tmp_path)


def test_cli_runs_a_study_and_draws_its_figure(tmp_path, cli):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    out = cli("run", path, "-j", "2", "--out", tmp_path / "res", "--quiet")
    assert out.returncode == 0, out.stderr
    png = tmp_path / "res" / "small" / "figures" / "phase_plane.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    rep = cli("report", tmp_path / "res" / "small")
    assert rep.returncode == 0 and "alternating(first=gen, disc_steps=5)" in rep.stdout


def test_cli_bad_study_exits_nonzero_without_traceback_and_writes_nothing(tmp_path, cli):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "optimizer": {"name": "sgd", "lr": -0.5}}))
    out = cli("run", path, "--out", tmp_path / "res")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "optimizer.lr" in lines[0] and "-0.5" in lines[0]
    assert not (tmp_path / "res").exists()
    assert os.listdir(tmp_path) == ["bad.yaml"]


def test_cli_list_names_every_component_with_defaults(cli):
    import subprocess
    import sys

    out = cli("list")
    assert out.returncode == 0
    # the registries as a fresh process sees them (tests register components in this one)
    code = ("import gamedyn; from gamedyn.regularizers import REGULARIZERS; print(' '.join("
            "gamedyn.GAMES.names() + gamedyn.RULES.names() + gamedyn.OPTIMIZERS.names() + "
            "REGULARIZERS.names()))")
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"bilinear", "dirac", "simultaneous", "alternating", "sgd", "r1"} <= set(names)
    for name in names:
        assert f"  {name}:" in out.stdout, name
    assert "disc_steps = 1" in out.stdout and "lr = 0.1" in out.stdout
    # each game's players, the names its study files use
    assert "  tandem: " in out.stdout and "      players: p1 (x), p2 (y)\n" in out.stdout
    assert "      players: gen, disc\n" in out.stdout and "      players: p1, p2\n" in out.stdout
    assert "  lola: " in out.stdout and "lookahead = True" in out.stdout
    assert "  market_with_min: " in out.stdout and "sigma = 0.01" in out.stdout


def test_python_dash_m_gamedyn_is_the_gamedyn_command(tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "gamedyn", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)

    listed = run("list")
    assert listed.returncode == 0 and "bilinear:" in listed.stdout and "simultaneous:" in listed.stdout
    assert run("--help").stdout.startswith("usage: gamedyn ")
    missing = run("run", tmp_path / "nowhere.yaml")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("gamedyn: error: ") and "nowhere.yaml" in missing.stderr
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "game": "bilinear", "rules": ["simultaneous"],
                                    "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 20}))
    done = run("run", path, "--out", tmp_path / "res", "--quiet", "--no-figures")
    assert done.returncode == 0, done.stderr
    assert len(gamedyn.load(tmp_path / "res" / "small").runs) == 1


def test_parts_that_store_a_column_two_ways_are_assembled_as_text(tmp_path):
    """Parts written before a column was stored one way for every run (a number in one part, text
    in another) still assemble into one runs table, the column as text."""
    from gamedyn.results import ResultsFolder

    folder = ResultsFolder(tmp_path, "old")
    traj = pd.DataFrame({"run_id": pd.Categorical([]), "step": pd.Series([], dtype="int64"),
                         "variable": pd.Categorical([]), "value": pd.Series([], dtype="float64")})
    folder.write_part("a", pd.DataFrame({"run_id": ["r1"], "init.gen.x": [0.5], "game": ["g"]}),
                      traj.assign(run_id=pd.Categorical([], categories=["r1"])))
    folder.write_part("b", pd.DataFrame({"run_id": ["r2", "r3"], "init.gen.x": ["[0.5, 1.0]", None],
                                         "game": ["g", "g"]}),
                      traj.assign(run_id=pd.Categorical([], categories=["r2", "r3"])))
    folder.assemble(["a", "b"], ["r2", "r1", "r3"])
    runs = pd.read_parquet(folder.path / "runs.parquet")
    assert list(runs["run_id"]) == ["r2", "r1", "r3"]
    assert list(runs["init.gen.x"].iloc[:2]) == ["[0.5, 1.0]", "0.5"] and runs["init.gen.x"].isna()[2]


@pytest.mark.parametrize("categorical", [True, False])
def test_a_part_is_stored_grouped_by_run_in_the_runs_order_with_steps_ascending(tmp_path, categorical):
    """Rows handed over out of order (runs interleaved, steps descending) are stored grouped by run
    in the runs part's order, steps ascending, each row kept; rows already so are stored as given."""
    import numpy as np

    from gamedyn.results import ResultsFolder, _run_major

    folder = ResultsFolder(tmp_path, "order")
    ids = ["r2", "r1"]
    rows = pd.DataFrame({"run_id": ["r1", "r2", "r1", "r2"], "step": [10, 10, 0, 0],
                         "variable": pd.Categorical(["x"] * 4), "value": [1.0, 2.0, 3.0, 4.0]})
    if categorical:
        rows["run_id"] = pd.Categorical(rows["run_id"], categories=ids)
    folder.write_part("a", pd.DataFrame({"run_id": ids}), rows)
    stored = pd.read_parquet(folder.part("a", "trajectories"))
    assert stored["run_id"].astype(str).tolist() == ["r2", "r2", "r1", "r1"]
    assert stored["step"].tolist() == [0, 10, 0, 10] and stored["value"].tolist() == [4.0, 2.0, 3.0, 1.0]
    rng = np.random.default_rng(0)
    for _ in range(200):   # against the definition, on small random cases
        codes, steps = rng.integers(0, 3, 6), rng.integers(0, 3, 6)
        order = list(zip(codes, steps))
        assert _run_major(codes, steps) == (order == sorted(order))


def test_a_changed_network_file_is_named_when_its_results_are_refused(tmp_path):
    """The study file as it was, its network module edited: the results folder is refused in one
    line that names the module as the change (not the study file); --fresh replaces them."""
    import shutil

    from gamedyn import load_study, run_study

    from .conftest import ROOT

    (tmp_path / "plugins").mkdir()
    nets = tmp_path / "plugins" / "nets.py"
    shutil.copy(ROOT / "studies" / "plugins" / "digits_mlp.py", nets)
    game = {"name": "module_gan", "data": "digits", "latent": {"dim": 4}, "batch": 8,
            "eval_samples": 16, "save_players": False,
            "generator": {"module": "plugins/nets.py", "class": "Generator",
                          "kwargs": {"latent": 4, "hidden": 8}},
            "discriminator": {"module": "plugins/nets.py", "class": "Discriminator",
                              "kwargs": {"hidden": 8}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "own", "game": game, "rules": ["simultaneous"], "steps": 2, "record_every": 1,
        "optimizer": {"name": "adam", "lr": 1e-3}, "dtype": "float32", "figures": []}))
    run_study(load_study(tmp_path / "s.yaml"), out=tmp_path / "res", progress=False)
    nets.write_text(nets.read_text() + "\n# a comment: new contents, new runs\n")
    with pytest.raises(StudyError) as e:
        run_study(load_study(tmp_path / "s.yaml"), out=tmp_path / "res", progress=False)
    text = str(e.value)
    assert "plugins/nets.py changed" in text and "the study file changed" not in text, text
    assert "\n" not in text and "--fresh" in text
    again = run_study(load_study(tmp_path / "s.yaml"), out=tmp_path / "res", progress=False,
                      fresh=True)
    assert len(again.runs) == 1
