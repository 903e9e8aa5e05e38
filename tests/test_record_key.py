"""A study's ``record:`` keeps chosen variables in the trajectories table: groups or names; the
runs table (diagnosis included) is that of a study that keeps them all."""

from __future__ import annotations

import pandas as pd
import pytest

from gamedyn import StudyError, make_study, run_study
from gamedyn.figures.phase_plane import phase_plane

SPEC = {"name": "rec", "game": ["bilinear", {"name": "dirac", "loss": "gan"}],
        "rules": ["simultaneous", {"name": "alternating", "first": "gen"}],
        "optimizer": {"name": "sgd", "lr": [0.1, 0.3]}, "seeds": 2, "steps": 60,
        "record_every": 5, "lyapunov": "off"}
TIMING = ["wall_time", "compile_time"]


@pytest.mark.parametrize("record,variables", [
    (["params"], {"gen.x[0]", "disc.y[0]", "gen.theta", "disc.psi"}),
    (["params", "distance"], {"gen.x[0]", "disc.y[0]", "gen.theta", "disc.psi", "distance"}),
    (["losses", "grad_norm.disc"], {"loss.gen", "loss.disc", "grad_norm.disc"}),
])
def test_record_keeps_the_chosen_variables_and_changes_no_label(tmp_path, record, variables):
    everything = run_study(make_study(SPEC), out=tmp_path / "all", progress=False)
    chosen = run_study(make_study({**SPEC, "record": record}), out=tmp_path / "some", progress=False)
    t = chosen.trajectories
    assert set(t["variable"].cat.categories) == variables
    full = everything.trajectories
    want = full[full["variable"].isin(variables)].reset_index(drop=True)
    assert t["value"].tolist() == want["value"].tolist() and t["step"].tolist() == want["step"].tolist()
    cols = [c for c in everything.runs.columns if c not in TIMING and c not in ("run_id", "batch_id")]
    pd.testing.assert_frame_equal(chosen.runs[cols], everything.runs[cols])
    if "params" in record:  # the phase plane finds the players from their coordinates
        png = phase_plane(chosen, tmp_path / "pp.png")
        assert png.stat().st_size > 20_000


@pytest.mark.parametrize("record,key,message", [
    (["parameters"], "record[0]", "'parameters' is neither a group nor a variable of game 'bilinear'"),
    ("params", "record", "'params' is not accepted: expected a list of variable groups"),
    ([], "record", "is not accepted"),
    (["metrics"], "record", "keeps none of the variables of game 'bilinear'"),
])
def test_a_bad_record_is_refused_with_what_is_accepted(record, key, message):
    with pytest.raises(StudyError) as e:
        make_study({**SPEC, "record": record})
    assert e.value.key == key and message in e.value.message
    if key == "record[0]":
        assert "params, losses, grad_norms, distance, metrics, or one of gen.x[0]" in e.value.message


def test_float32_trajectories_are_the_float64_ones_rounded(tmp_path):
    everything = run_study(make_study(SPEC), out=tmp_path / "all", progress=False)
    small = run_study(make_study({**SPEC, "trajectory_dtype": "float32", "record": ["params"]}),
                      out=tmp_path / "f32", progress=False)
    t = small.trajectories
    assert str(t["value"].dtype) == "float32"
    full = everything.trajectories
    want = full[full["variable"].isin(set(t["variable"].cat.categories))]
    assert (t["value"].to_numpy() == want["value"].to_numpy().astype("float32")).all()
    with pytest.raises(StudyError, match="'half' is not accepted: expected float64"):
        make_study({**SPEC, "trajectory_dtype": "half"})


@pytest.mark.parametrize("record,field,losses", [
    (None, True, True), (["params"], False, False), (["params", "distance"], False, False),
    (["params", "grad_norm.gen"], True, True), (["losses"], False, True)])
def test_the_field_is_evaluated_at_a_record_only_where_it_is_kept_or_diagnosed(record, field, losses):
    """The gradient norms cost a field evaluation per record: computed where ``record:`` keeps
    them, or where the game knows no equilibrium (the gradient norms are then the distance to
    stationarity that the dynamics labels read); the losses (a forward pass) where it keeps them or
    the field is evaluated anyway. The losses recorded are the game's."""
    import torch

    from gamedyn.games import GAMES
    from gamedyn.record import Recorder

    cls = GAMES.get("bilinear")
    game = cls.build([cls.resolve({}, "game")] * 3, torch.float64)
    calls = []
    game_losses = game.losses
    game.losses = lambda *a, **k: calls.append(1) or game_losses(*a, **k)
    rec = Recorder(game, 3, 10, 5, 1e6, record=record)
    point = {"gen": {"x": torch.full((3, 1), 2.0, dtype=torch.float64)},
             "disc": {"y": torch.full((3, 1), 3.0, dtype=torch.float64)}}
    rec.record(0, point)
    assert rec.field is field and rec.losses is losses and bool(calls) is losses
    assert any(v.startswith("grad_norm.") for v in rec.variables) is field
    assert any(v.startswith("loss.") for v in rec.variables) is losses
    if losses:  # x·y = 6 for the generator, −6 for the discriminator
        assert rec.values[0, rec.variables.index("loss.gen")].tolist() == [6.0] * 3
        assert rec.values[0, rec.variables.index("loss.disc")].tolist() == [-6.0] * 3
    no_eq = GAMES.get("gan1d")
    g = no_eq.build([no_eq.resolve({"data": "mixture"}, "game")] * 3, torch.float64)
    assert g.equilibrium() is None
    assert Recorder(g, 3, 10, 5, 1e6, record=["params"]).field   # no equilibrium: always
