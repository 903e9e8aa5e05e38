"""Study files: validation errors that name file, key, value and what is accepted; expansion."""

import pytest
import yaml

from gamedyn import StudyError, load_study, make_study

BASE = {"name": "s", "game": "dirac", "rules": ["simultaneous"],
        "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 10}


def error(**changes):
    spec = {**BASE, **changes}
    for k in [k for k, v in changes.items() if v is None]:
        del spec[k]
    with pytest.raises(StudyError) as e:
        make_study(spec)
    return e.value


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"game": "chess"}, "game", ["'chess'", "bilinear", "dirac"]),
    ({"rules": ["simultaneous", "telepathy"]}, "rules[1]", ["'telepathy'", "alternating"]),
    ({"optimizer": {"name": "sgd", "lr": -0.1}}, "optimizer.lr", ["-0.1", "> 0"]),
    ({"optimizer": {"name": "sgd", "lr": [0.1, -1]}}, "optimizer.lr", ["-1", "> 0"]),
    ({"optimizer": {"lr": 0.1, "disc": {"lr": 0}}}, "optimizer.disc.lr", ["0", "> 0"]),
    ({"optimizer": {"name": "adamw"}}, "optimizer.name", ["'adamw'", "sgd"]),
    ({"steps": "many"}, "steps", ["'many'", "integer"]),
    ({"steps": None}, "steps", ["missing"]),
    ({"rules": None}, "rules", ["missing"]),
    ({"colour": "red"}, "colour", ["unknown key", "rules"]),
    ({"game": {"name": "dirac", "loss": "hinge"}}, "game.loss", ["'hinge'", "gan, nsgan, wgan"]),
    ({"game": {"name": "dirac", "los": "gan"}}, "game.los", ["unknown parameter", "loss"]),
    ({"game": {"loss": "gan"}}, "game", ["missing `name`"]),
    ({"rules": [{"name": "alternating", "disc_steps": 0}]}, "rules[0].disc_steps", [">= 1"]),
    ({"rules": [{"name": "alternating", "disc_steps": 2.5}]}, "rules[0].disc_steps", ["integer"]),
    ({"rules": "simultaneous"}, "rules", ["list"]),
    ({"seeds": -2}, "seeds", ["-2"]),
    ({"init": {"gen": {"x": 1.0}}}, "init.gen.x", ["no parameter 'x'", "theta"]),
    ({"init": {"dist": "cauchy"}}, "init.dist", ["'cauchy'", "normal"]),
    ({"diagnose": {"growth_factor": 0.5}}, "diagnose.growth_factor", ["0.5", "> 1"]),
    ({"diagnose": {"patience": 3}}, "diagnose.patience", ["unknown threshold"]),
    ({"name": "../escape"}, "name", ["'../escape'"]),
    ({"figures": ["pie_chart"]}, "figures[0]", ["'pie_chart'", "phase_plane"]),
    ({"game": "mle", "init": {"gen": {"mu": 1.0}}}, "init.gen", ["no player 'gen'", "disc"]),
    ({"game": {"name": "gan1d", "discriminator": "optimal"}, "regularizer": {"name": "r1"}}, "regularizer",
     ["acts on the discriminator"]),
    ({"regularizer": {"name": "dropout"}}, "regularizer.name", ["'dropout'", "r1"]),
    ({"parts": []}, "parts", ["[]", "a list of mappings"]),
    ({"parts": [{"game": "tandem"}, "ipd"]}, "parts[1]", ["'ipd'", "a mapping", "steps"]),
    ({"parts": [{"game": "ipd", "name": "x"}]}, "parts[0].name", ["not a key a part may set",
                                                                  "record_every"]),
    ({"parts": [{"steps": 5}, {"optimizer": {"lr": -1}}]}, "parts[1].optimizer.lr",
     ["-1", "> 0"]),
    ({"init": {"gen": {"theta": 0.5}}, "parts": [{"steps": 5}, {"game": "tandem"}]}, "init.gen",
     ["unknown key", "p1", "(in parts[1])"]),
    ({"steps": None, "parts": [{"steps": 5}, {"game": "ipd"}]}, "steps",
     ["missing required key (in parts[1])"]),
])
def test_each_error_names_its_key_value_and_what_is_accepted(changes, key, words):
    e = error(**changes)
    assert e.key == key
    text = str(e)
    assert "\n" not in text
    for w in words:
        assert w in text, (w, text)


@pytest.mark.parametrize(("changes", "key", "meant"), [
    ({"rules": ["simultaneus"]}, "rules[0]", "simultaneous"),
    ({"game": "diracc"}, "game", "dirac"),
    ({"optimizer": {"name": "adamm"}}, "optimizer.name", "adam"),
    ({"stpes": 10}, "stpes", "steps"),
    ({"game": {"name": "dirac", "los": "gan"}}, "game.los", "loss"),
    ({"init": {"dist": "normal", "scael": 1.0}}, "init.scael", "scale"),
    ({"figures": ["phase_plnae"]}, "figures[0]", "phase_plane"),
    ({"diagnose": {"late_fractoin": 0.5}}, "diagnose.late_fractoin", "late_fraction"),
])
def test_a_typo_is_answered_with_the_closest_accepted_name(changes, key, meant):
    e = error(**changes)
    assert e.key == key and f"(did you mean {meant!r}?)" in str(e), str(e)


def test_a_name_like_none_accepted_gets_no_guess():
    for changes in ({"game": "chess"}, {"colour": "red"}, {"rules": ["telepathy"]}):
        assert "did you mean" not in str(error(**changes))


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: s\ngame: [dirac\n")
    with pytest.raises(StudyError) as e:
        load_study(bad)
    assert str(bad) in str(e.value) and "line" in str(e.value)
    bad.write_text(yaml.safe_dump({**BASE, "steps": 0}))
    with pytest.raises(StudyError) as e:
        load_study(bad)
    assert str(e.value).startswith(f"{bad}: steps: 0 is not accepted")


def test_grid_is_the_product_of_axes_and_seeds():
    study = make_study({**BASE, "game": ["bilinear", {"name": "dirac", "loss": ["gan", "wgan"]}],
                        "rules": ["simultaneous", {"name": "alternating", "disc_steps": [1, 5]}],
                        "optimizer": {"name": "sgd", "lr": [0.1, 0.2], "momentum": [0.0, -0.5]},
                        "seeds": 3})
    assert len(study.runs) == 3 * 3 * 4 * 3
    # learning rate, momentum, seed and the Dirac-GAN's loss vary inside a batch; the game and the
    # rule's structure do not
    assert len(study.batches()) == 2 * 3
    assert sorted(len(b) for b in study.batches()) == [12] * 3 + [24] * 3


def test_columns_follow_the_study_file_paths():
    shared = make_study({**BASE, "rules": [{"name": "alternating", "disc_steps": 5}]}).runs[0].columns
    assert shared["optimizer.lr"] == 0.1 and shared["optimizer.momentum"] == 0.0
    assert shared["rule.disc_steps"] == 5 and shared["game.loss"] == "gan"
    assert shared["rule_label"] == "alternating(disc_steps=5)"
    split = make_study({**BASE, "optimizer": {"lr": 0.1, "disc": {"lr": 0.3}}}).runs[0].columns
    assert split["optimizer.gen.lr"] == 0.1 and split["optimizer.disc.lr"] == 0.3
    assert "optimizer.lr" not in split and split["optimizer.momentum"] == 0.0


def test_run_ids_are_stable_and_distinct():
    a = make_study({**BASE, "optimizer": {"lr": [0.1, 0.2]}, "seeds": 2})
    b = make_study({**BASE, "optimizer": {"lr": [0.2, 0.1]}, "seeds": [1, 0], "name": "other"})
    assert len({r.run_id for r in a.runs}) == 4
    assert {r.run_id for r in a.runs} == {r.run_id for r in b.runs}


def test_duplicate_runs_are_refused():
    e = error(rules=["simultaneous", "simultaneous"])
    assert "same run twice" in str(e)


def test_max_batch_splits_batches():
    study = make_study({**BASE, "optimizer": {"lr": [0.1, 0.2, 0.3]}, "seeds": 3, "max_batch": 4})
    assert sorted(len(b) for b in study.batches()) == [1, 4, 4]


def test_a_column_is_stored_one_way_for_every_run():
    """Init alternatives giving one parameter a scalar and a list: the column is text (JSON) for
    every run; all scalars stay numbers, all lists stay JSON text. Run ids do not change."""
    def column(*values):
        study = make_study({**BASE, "game": {"name": "bilinear", "dim": 2},
                            "init": [{"gen": {"x": v}} for v in values]})
        return [r.columns["init.gen.x"] for r in study.runs], study

    mixed, study = column(0.5, [0.5, 1.0], 2)
    assert mixed == ["0.5", "[0.5, 1.0]", "2"]
    assert [r.config["init"]["gen"]["x"] for r in study.runs] == [0.5, [0.5, 1.0], 2]
    assert column(0.5, 2)[0] == [0.5, 2]
    assert column([0.5, 1.0], [2, 1.5])[0] == ["[0.5, 1.0]", "[2, 1.5]"]
    # a parameter given for some alternatives only: None elsewhere, in both kinds of column
    study = make_study({**BASE, "game": {"name": "bilinear", "dim": 2},
                        "init": [{"gen": {"x": 0.5}}, {"gen": {"x": [1.0, 2.0]}}, {"dist": "normal"}]})
    assert [r.columns.get("init.gen.x") for r in study.runs] == ["0.5", "[1.0, 2.0]", None]


def test_uniform_column_keeps_one_kind_and_turns_mixed_kinds_into_text():
    from gamedyn.study import uniform_column

    assert uniform_column([1, 0.5, None]) == [1, 0.5, None]
    assert uniform_column(["gan", None, "wgan"]) == ["gan", None, "wgan"]
    assert uniform_column([True, False]) == [True, False]
    assert uniform_column(["gan", 0.5, True, None]) == ["gan", "0.5", "true", None]


def test_a_study_of_parts_is_the_union_of_its_parts_as_studies():
    """``parts:``: each part is the study with the part's keys in their place; its runs are those
    of the separate studies (same ids: the name is not part of a run's configuration), each with
    its own steps, step size and starts, and the resolved spec makes the same study again."""
    common = {"rules": ["simultaneous", {"name": "lola", "alpha": 0.1}], "seeds": 2}
    one = {"game": "tandem", "optimizer": {"name": "sgd", "lr": 0.1},
           "init": {"dist": "normal", "scale": 0.1}, "steps": 50}
    two = {"game": "ipd", "optimizer": {"name": "sgd", "lr": 1.0}, "steps": 30, "seeds": 3,
           "record_every": 5}
    whole = make_study({"name": "both", **common, "parts": [one, two]})
    apart = [make_study({"name": f"s{i}", **common, **p}) for i, p in enumerate((one, two))]
    assert [r.run_id for r in whole.runs] == [r.run_id for s in apart for r in s.runs]
    assert len(whole.runs) == 2 * 2 + 2 * 3
    assert {r.columns["game"]: r.config["steps"] for r in whole.runs} == {"tandem": 50, "ipd": 30}
    assert {r.columns["record_every"] for r in whole.runs} == {10, 5}
    assert [len(b) for b in whole.batches()] == [2, 2, 3, 3]
    again = make_study(whole.spec)
    assert [r.run_id for r in again.runs] == [r.run_id for r in whole.runs]
    assert again.hash == whole.hash
    with pytest.raises(StudyError, match="same run twice"):
        make_study({"name": "twice", **common, "parts": [one, one]})
