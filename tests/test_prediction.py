"""The stability prediction in the runs table, beside the observed dynamics."""

import math

import numpy as np
import pytest

from .conftest import simulate


def test_prediction_columns_on_bilinear_match_closed_forms():
    runs, _ = simulate("bilinear", "simultaneous", lr=[0.1, 0.3], steps=400,
                       init={"dist": "constant", "scale": 1.0})
    for _, r in runs.iterrows():
        eta = r["optimizer.lr"]
        assert r["predicted_radius"] == pytest.approx(math.sqrt(1 + eta**2), rel=1e-12)
        assert r["observed_radius"] == pytest.approx(math.sqrt(1 + eta**2), rel=1e-9)
        assert r["predicted_dynamics"] == "diverged" and bool(r["stability_agrees"])


def test_marginal_prediction_agrees_with_cycling():
    runs, _ = simulate("bilinear", {"name": "alternating", "first": "gen"}, lr=0.3, steps=400)
    r = runs.iloc[0]
    assert r["predicted_radius"] == pytest.approx(1.0, abs=1e-9)
    assert (r["predicted_dynamics"], r["dynamics"], bool(r["stability_agrees"])) == \
        ("cycling", "cycling", True)


def test_contradictions_are_easy_to_find_and_missing_predictions_are_na():
    """ρ = √(1 + η²/4) = 1.0003 on the Dirac-GAN at η = 0.05: locally divergent, but 600 steps do
    not show it; that run is flagged. Adam has no prediction."""
    runs, _ = simulate({"name": "dirac", "loss": "gan"}, "simultaneous", lr=[0.05, 0.2], steps=600,
                       init={"dist": "constant", "scale": 0.1})
    flagged = runs[runs["stability_agrees"] == False]  # noqa: E712  (nullable booleans)
    assert list(flagged["optimizer.lr"]) == [0.05]
    assert flagged.iloc[0]["predicted_radius"] == pytest.approx(math.sqrt(1 + 0.05**2 / 4), rel=1e-12)
    adam, _ = simulate("bilinear", "simultaneous", steps=20, optimizer={"name": "adam", "lr": 0.01})
    assert np.isnan(adam.iloc[0]["predicted_radius"]) and adam["stability_agrees"].isna().all()


def test_predicting_cgd_on_a_stochastic_game_leaves_the_training_stream_alone():
    """The Jacobian's reverse passes evaluate the game too (cgd's backward solves): they draw from
    the analysis stream, like the step itself, never from the training stream, whose draws would
    otherwise depend on the batch (its slowest run's backward CG iterations)."""
    import torch

    from gamedyn import stability
    from gamedyn.games import GAMES
    from gamedyn.optim import OPTIMIZERS
    from gamedyn.random import Streams
    from gamedyn.rules import RULES

    def build(registry, name, configs):
        cls = registry.get(name)
        return cls.build([cls.resolve(c, name) for c in configs], torch.float64)

    game = build(GAMES, "gan1d", [{"discriminator": "learned", "gradient": "minibatch", "batch": 8}] * 2)
    game.rng = Streams(torch.tensor([0, 1]))
    opts = {p: build(OPTIMIZERS, "sgd", [{"lr": 0.05}, {"lr": 0.2}]) for p in ("gen", "disc")}
    rho = stability.predict(game, build(RULES, "cgd", [{}] * 2), opts, n_runs=2, strict=True)
    assert rho.shape == (2,)
    assert game.rng.counter == 0
