"""Games name their own players (``p1``, ``p2`` for the general-sum games): study files use those
names and refuse others in one line; rules built for gen/disc act on roles (first, second player);
every orchestration path (batches, resume, ``-j 2``, fused stepping) and the analysis work with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import StudyError, make_study, run_study
from gamedyn.games import GAMES
from gamedyn.games.tandem import Tandem
from gamedyn.players import names, roles
from gamedyn.results import TIMING_COLUMNS

GENERAL = ("tandem", "matching_pennies", "ipd", "zerosum_quartic")
TIMING = list(TIMING_COLUMNS)


def spec(**kw):
    base = {"name": "names", "game": "tandem", "optimizer": {"name": "sgd", "lr": 0.1},
            "rules": ["simultaneous"], "init": {"dist": "normal", "scale": 0.5}, "steps": 30,
            "record_every": 5, "figures": []}
    return {**base, **kw}


@pytest.mark.parametrize("game", GENERAL)
def test_general_sum_games_name_their_players_p1_p2(game):
    cls = GAMES.get(game)
    g = cls.build([cls.resolve({}, "game")], torch.float64)
    assert tuple(g.players) == ("p1", "p2") == tuple(g.shapes())
    assert names(g.players) == ("p1", "p2") and roles(g.players) == {"gen": "p1", "disc": "p2"}


def test_gan_games_keep_gen_and_disc_whatever_their_players():
    """One-player GAN games and ``sce``'s (disc, gen) order still take both GAN names, in roles
    by name: their study entries, configs and run ids are those of before."""
    assert names(("gen",)) == names(("disc", "gen")) == ("gen", "disc")
    assert roles(("disc", "gen")) == {"gen": "gen", "disc": "disc"}
    assert roles(("disc",)) == {"disc": "disc"} and roles(("a", "b", "c")) == {}


def test_study_entries_take_the_games_names():
    s = make_study(spec(optimizer={"name": "sgd", "lr": 0.1, "p2": {"lr": 0.05}},
                        init={"p1": {"x": 0.3}, "dist": "constant", "scale": 0.0},
                        rules=[{"name": "alternating", "first": "p2"}]))
    (run,) = s.runs
    assert set(run.config["optimizer"]) == {"p1", "p2"}
    assert run.config["optimizer"]["p2"]["lr"] == 0.05 and run.config["init"]["p1"] == {"x": 0.3}
    assert run.columns["optimizer.p2.lr"] == 0.05 and run.columns["init.p1.x"] == 0.3
    grid = make_study(spec(init={"grid": {"p1.x": [-1, 1, 3], "p2.y": [0, 1, 2]}}))
    assert [r.columns["init.p2.y"] for r in grid.runs] == [0.0, 1.0] * 3


@pytest.mark.parametrize("kw, key, accepted", [
    ({"optimizer": {"name": "sgd", "lr": 0.1, "gen": {"lr": 0.2}}}, "optimizer.gen", "p1, p2"),
    ({"init": {"disc": {"y": 1.0}}}, "init.disc", "p1, p2"),
    ({"init": {"grid": {"gen.x": [-1, 1, 3]}}}, "init.grid.gen.x", "p1, p2"),
    ({"init": {"p1": {"y": 1.0}}}, "init.p1.y", "x"),
    ({"rules": ["simultaneous", {"name": "alternating", "first": "p3"}]}, "rules[1]", "p1, p2"),
    ({"game": "dirac", "optimizer": {"name": "sgd", "lr": 0.1, "p1": {"lr": 0.2}}},
     "optimizer.p1", "gen, disc"),
    ({"game": "dirac", "rules": [{"name": "alternating", "first": "p2"}]}, "rules[0]", "gen, disc"),
    ({"game": ["dirac", "tandem"], "optimizer": {"name": "sgd", "p1": {"lr": 0.2}}},
     "optimizer.p1", "gen, disc"),
])
def test_other_names_are_refused_in_one_line_with_the_accepted_ones(kw, key, accepted):
    with pytest.raises(StudyError) as e:
        make_study(spec(**kw))
    text = str(e.value)
    assert e.value.key == key and accepted in text and "\n" not in text, text


def _one_step(first: str | None, x: float, y: float, lr: float = 0.1) -> tuple[float, float]:
    """One round of alternating SGD on tandem by hand: ∂L₁/∂x = ∂L₂/∂y = 2(x + y) − 2."""
    if first == "p1":
        x = x - lr * (2 * (x + y) - 2)
        return x, y - lr * (2 * (x + y) - 2)
    y = y - lr * (2 * (x + y) - 2)
    return x - lr * (2 * (x + y) - 2), y


@pytest.mark.parametrize("first, order", [("p1", "p1"), ("p2", "p2"), ("gen", "p1"),
                                          (None, "p2")])
def test_alternating_first_takes_the_games_names_and_defaults_to_the_second_player(first, order):
    """``first: p2`` starts a round with player 2, as the default (the disc role: the second
    player, as in a GAN game) does; ``first: p1`` (or the role gen) with player 1."""
    rule = {"name": "alternating"} if first is None else {"name": "alternating", "first": first}
    res = run_study(make_study(spec(rules=[rule], steps=1, record_every=1,
                                    init={"p1": {"x": 0.3}, "p2": {"y": -0.2}})),
                    out=_tmp(), progress=False, compile="off", fresh=True)
    t = res.trajectories
    got = [float(t.loc[(t["step"] == 1) & (t["variable"] == v), "value"].iloc[0])
           for v in ("p1.x", "p2.y")]
    np.testing.assert_allclose(got, _one_step(order, 0.3, -0.2), rtol=1e-14)


def _tmp():
    import tempfile

    return tempfile.mkdtemp(prefix="gamedyn-names-")


class GanNamedTandem(Tandem):
    """Tandem with the players called gen and disc, as it was before games could name them."""

    players = ("gen", "disc")   # ScalarPair: x is the first player's, y the second's


RULE_LIST = ["simultaneous", {"name": "alternating", "disc_steps": 2}, "best_response",
             {"name": "unrolled", "k": 2}, "cgd", {"name": "lola", "alpha": 0.1},
             {"name": "sos", "alpha": 0.1}, "lss", {"name": "lookahead_opponent", "alpha": 0.1},
             {"name": "consensus", "gamma": 1.0}]


def test_rules_give_the_gan_named_games_results_with_roles_first_and_second(tmp_path):
    """Every rule (those needing gen and disc through the roles: player 2 best-responds, is
    unrolled, is CGD's y) steps tandem with players p1, p2 exactly as it stepped the same game with
    players gen, disc; the stability prediction and the Lyapunov exponents are the same too."""
    GAMES.register("tandem_gan_named_for_test")(GanNamedTandem)
    try:
        kw = {"rules": RULE_LIST, "optimizer": {"name": "sgd", "lr": 0.1}, "seeds": 2}
        named = run_study(make_study(spec(**kw)), out=tmp_path / "a", progress=False, compile="off")
        gan = run_study(make_study(spec(name="gan", game="tandem_gan_named_for_test", **kw)),
                        out=tmp_path / "b", progress=False, compile="off")
    finally:
        GAMES._classes.pop("tandem_gan_named_for_test")
    rename = {"p1.x": "gen.x", "p2.y": "disc.y", "loss.p1": "loss.gen", "loss.p2": "loss.disc",
              "grad_norm.p1": "grad_norm.gen", "grad_norm.p2": "grad_norm.disc"}
    a, b = named.trajectories, gan.trajectories
    assert [rename[v] for v in a["variable"].astype(str)] == list(b["variable"].astype(str))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    cols = ["rule_label", "dynamics", "grad_evals", "hvps", "predicted_dynamics", "lyapunov_1"]
    pd.testing.assert_frame_equal(named.runs[cols], gan.runs[cols])
    assert named.runs["lyapunov_1"].notna().any()


def test_every_orchestration_path_runs_a_game_with_its_own_names(tmp_path, pool):
    """Batches of 2 runs, two workers (loky), resume after a batch's parts are lost: the tables of
    one process, one batch at a time."""
    s = make_study(spec(rules=[{"name": "alternating", "first": "p2"}, {"name": "lola", "alpha": 0.1},
                               "cgd"],
                        optimizer={"name": "sgd", "lr": 0.1, "p2": {"lr": [0.05, 0.1]}},
                        seeds=2, max_batch=2))
    assert len(s.batches()) == 6
    one = run_study(s, out=tmp_path / "one", progress=False, compile="off")
    two = run_study(s, out=tmp_path / "two", jobs=2, progress=False, compile="off")
    pd.testing.assert_frame_equal(one.runs.drop(columns=TIMING), two.runs.drop(columns=TIMING))
    pd.testing.assert_frame_equal(one.trajectories, two.trajectories)
    parts = tmp_path / "two" / "names" / "parts"
    lost = sorted(parts.glob("*.runs.parquet"))[0]
    lost.unlink()
    parts.joinpath(lost.name.replace(".runs.", ".trajectories.")).unlink()
    kept = {p: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    again = run_study(s, out=tmp_path / "two", progress=False, compile="off")
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())   # only the lost batch is redone
    pd.testing.assert_frame_equal(again.runs.drop(columns=TIMING), one.runs.drop(columns=TIMING))
    pd.testing.assert_frame_equal(again.trajectories, one.trajectories)
    assert set(one.runs.columns) >= {"optimizer.p2.lr", "optimizer.p1.lr", "rule.first"}


def test_fused_stepping_or_its_stated_fallback_gives_the_eager_results(monkeypatch):
    """``compile: on`` on tandem with p1/p2: compiled chunks, or eager stepping with its reason in
    ``stepping_note`` (as for GAN games), and the eager numbers either way."""
    from gamedyn import fuse
    from gamedyn.batch import run_batch

    monkeypatch.setattr(fuse, "MAX_UNROLL", 10)
    s = make_study(spec(rules=["simultaneous", {"name": "alternating", "first": "p2"}],
                        optimizer={"name": "sgd", "lr": 0.1, "p1": {"lr": 0.2}}, seeds=3,
                        steps=40, record_every=10))
    for batch in s.batches():
        eager = run_batch(batch, s.thresholds, compile="off")
        fused = run_batch(batch, s.thresholds, compile="on")
        stepping = fused.runs["stepping"]
        assert ((stepping == "compiled") | (fused.runs["stepping_note"] != "")).all()
        np.testing.assert_allclose(fused.trajectories["value"].to_numpy(),
                                   eager.trajectories["value"].to_numpy(), rtol=1e-9, atol=1e-12)
        assert (fused.runs["dynamics"] == eager.runs["dynamics"]).all()


def test_figures_pick_the_first_and_second_players(tmp_path):
    from gamedyn.figures.phase_plane import _phase_vars, hue_column

    assert _phase_vars(["p1.x", "p2.y", "loss.p1", "loss.p2"]) == ("p1.x", "p2.y")
    assert _phase_vars(["disc.mu", "gen.mu", "loss.disc", "loss.gen"]) == ("gen.mu", "disc.mu")
    assert _phase_vars(["disc.mu", "loss.disc"]) is None
    res = run_study(make_study(spec(game="zerosum_quartic", rules=["simultaneous", "lola"],
                                    optimizer={"name": "sgd", "lr": 0.05, "p1": {"lr": 0.1}},
                                    seeds=2, figures=["phase_plane", "phase_portraits"])),
                    out=tmp_path, progress=False, compile="off")
    assert hue_column(res.runs) == "optimizer.p1.lr"
    from gamedyn.figures import FIGURES

    for fig in ("phase_plane", "phase_portraits"):
        assert FIGURES.get(fig)(res, tmp_path / f"{fig}.png").stat().st_size > 0
