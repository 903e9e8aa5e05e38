"""``module_gan`` against independent references (issue 14):

1. **gamedyn's own players.** Given ``nn.Module``s with the architecture and initialisation of
   ``mog_ring``'s MLP players (``tests/plugin_ring_nets.py``) and ``data: {mixture: ring}``,
   ``module_gan`` steps the same trajectories as ``mog_ring`` (same seeds, same streams), to
   rounding: the two games draw the same minibatches and latents from the same per-run streams in
   the same order, and differ only in how the layers' sums are ordered (``baddbmm`` on W [in, out]
   against ``nn.Linear`` on Wᵀ under ``vmap``).
2. **Dropout from each run's stream.** ``nn.Dropout`` layers draw their masks from the run's own
   stream (:class:`gamedyn.modules.BatchedModule`): a run alone equals the run in a batch bit for
   bit, masks are the stream's numbers, keep 1 − p of the units, and the metrics are computed in
   eval mode (no dropout, no draws).
3. **Compiled stepping.** ``module_gan`` draws fresh samples every evaluation, so ``--compile on``
   steps it eagerly and says why in ``stepping_note`` (the same numbers, bit for bit); with its
   draws replaced by fixed samples, the fused path compiles its ``vmap``-ed players and agrees with
   eager stepping to rounding (slow: a cold Inductor compilation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from gamedyn import fuse
from gamedyn.batch import run_batch
from gamedyn.errors import StudyError
from gamedyn.games import GAMES, mixture, module_gan
from gamedyn.games.mixture import MixtureGame
from gamedyn.games.module_gan import ModuleGan
from gamedyn.modules import BatchedModule, validate_spec
from gamedyn.random import Streams
from gamedyn.study import make_study
from tests.conftest import ROOT
from tests.test_module_gan import assert_alone_as_in_batch

pytestmark = pytest.mark.usefixtures("one_thread")

NETS = str(ROOT / "tests" / "plugin_ring_nets.py")
#: a small ring of eight: widths and sizes of the tests, the unrolled-GAN setup otherwise
LATENT, HIDDEN, BATCH, EVAL = 8, 16, 64, 200
#: both games' losses, by name: mog_ring's ``loss`` and module_gan's ``loss``
LOSSES = [("gan", "minimax"), ("nsgan", "non_saturating")]
SEEDS = [0, 3, 11]
#: tolerance of the trajectories (float64, 20 steps of Adam); measured: 3e-16 for the parameters'
#: norms, losses and gradient norms, 8e-15 for a bias norm near 0, 5e-13 for fit.energy (a
#: difference of mean distances: cancellation)
RTOL = 1e-10


def mog_spec(loss: str = "gan", **extra: Any) -> dict:
    return {"name": "mog", "game": {"name": "mog_ring", "loss": loss, "latent": LATENT,
                                    "gen_hidden": HIDDEN, "disc_hidden": HIDDEN, "batch": BATCH,
                                    "eval_samples": EVAL},
            **common(extra)}


def module_spec(loss: str = "minimax", dropout: float = 0.0, **extra: Any) -> dict:
    drop = {"dropout": dropout} if dropout else {}
    return {"name": "mod", "game": {
        "name": "module_gan",
        "generator": {"module": NETS, "class": "Generator",
                      "kwargs": {"latent": LATENT, "hidden": HIDDEN, **drop}},
        "discriminator": {"module": NETS, "class": "Discriminator", "kwargs": {"hidden": HIDDEN, **drop}},
        "latent": {"dim": LATENT, "dist": "normal"}, "data": {"mixture": "ring"}, "loss": loss,
        "batch": BATCH, "eval_samples": EVAL, "save_players": False},
        **common(extra)}


def common(extra: dict) -> dict:
    return {"rules": ["simultaneous"], "optimizer": {"name": "adam", "lr": 1e-3, "beta1": 0.5},
            "steps": 20, "record_every": 1, "seeds": SEEDS, "dtype": "float64", **extra}


def build(cls_name: str, game: dict, dtype: torch.dtype = torch.float64):
    cls = GAMES.get(cls_name)
    config = {k: v for k, v in game.items() if k != "name"}
    return cls.build([cls.resolve(config, "game")], dtype)


def linear_names(player: str) -> list[str]:
    """module_gan's names of the ``nn.Linear`` layers that are ``mog_ring``'s layers 0, 1, … (a
    Sequential of Linear, ReLU, …, Linear)."""
    return [f"net.{2 * i}" for i in range(3 if player == "gen" else 2)]


def as_mlp(player: str, named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """module_gan's parameters of a player [R, …] in ``gamedyn.nets.MLP``'s names and layout:
    ``net.{2i}.weight`` [R, out, in] → ``w{i}`` [R, in, out], ``net.{2i}.bias`` → ``b{i}``."""
    out = {}
    for i, name in enumerate(linear_names(player)):
        out[f"w{i}"] = named[f"{name}.weight"].transpose(-1, -2)
        out[f"b{i}"] = named[f"{name}.bias"]
    return out


def renamed_norms() -> dict[str, str]:
    """Recorded parameter norms: module_gan's name → mog_ring's (the norm of Wᵀ is that of W)."""
    out = {}
    for player in ("gen", "disc"):
        for i, name in enumerate(linear_names(player)):
            out[f"norm.{player}.{name}.weight"] = f"norm.{player}.w{i}"
            out[f"norm.{player}.{name}.bias"] = f"norm.{player}.b{i}"
    return out


def keep_final_params(monkeypatch) -> None:
    """Both games hand their final parameters to the runs table (column ``final``), so that the
    whole weights can be compared, not only their recorded norms."""

    def final_columns(self, params, n_runs):
        return {"final": [{p: {k: v[r].clone() for k, v in named.items()} for p, named in params.items()}
                          for r in range(n_runs)]}

    monkeypatch.setattr(MixtureGame, "final_columns", final_columns)
    monkeypatch.setattr(ModuleGan, "final_columns", final_columns)


# --- 1. module_gan with mog_ring's players is mog_ring -----------------------------------------

def test_the_ring_modules_are_mog_rings_initial_players_and_draw_its_samples():
    """Bit for bit, at the start: each run's initial weights (module_gan constructs the plugin's
    classes under ``torch_seed(seed, salt)``; the plugin recovers (seed, salt) and draws as
    ``MLP.init_params`` does), its data minibatches (``data.Sampler`` on ``{mixture: ring}`` and
    ``MixtureGame.sample_data``: mode index, then ε) and its latents (N(0, I) by ``fast_normal``)
    from the same stream; and so the players' outputs, up to the order of the sums."""
    mog, mod = build("mog_ring", mog_spec()["game"]), build("module_gan", module_spec()["game"])
    seeds = [5, 0, 5, 700]
    ref, got = mog.init_params(seeds), mod.init_params(seeds)
    for player in ("gen", "disc"):
        mine = as_mlp(player, got[player])
        assert mine.keys() == ref[player].keys()
        for k in ref[player]:
            assert torch.equal(mine[k], ref[player][k]), (player, k)
    keys = torch.tensor(seeds)
    a, b = Streams(keys), Streams(keys)
    assert torch.equal(mod.sampler.sample(a, BATCH), mog.sample_data(b, BATCH))
    assert torch.equal(mod.latents(a, BATCH), b.fast_normal(BATCH, LATENT, dtype=torch.float64))
    assert a.counter == b.counter == 3
    z = Streams(keys, 7).fast_normal(BATCH, LATENT, dtype=torch.float64)
    x = mog.generate(ref, z)
    torch.testing.assert_close(mod.generate(got, z), x, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(mod.disc_logit(got, x), mog.disc_logit(ref, x), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("mog_loss, module_loss", LOSSES)
def test_module_gan_with_mog_rings_players_steps_mog_rings_trajectories(monkeypatch, mog_loss,
                                                                       module_loss):
    """20 steps of simultaneous Adam, 3 seeds, every record: every recorded variable the two games
    share (parameter norms, renamed; losses; gradient norms; D.real, D.fake, fit.energy) and the
    final weights agree to ``RTOL``.

    The fixed evaluation sample of the metrics comes from a stream of its own whose id differs
    between the games (``EVAL_STREAM``: mog_ring's 0x5EED_E7A1, module_gan's 0x5EED_E7A2), so
    module_gan's is set to mog_ring's here; training never reads it."""
    monkeypatch.setattr(module_gan.ModuleGan, "EVAL_STREAM", mixture.MixtureGame.EVAL_STREAM)
    keep_final_params(monkeypatch)
    ref = run_batch(make_study(mog_spec(mog_loss)).batches()[0])
    got = run_batch(make_study(module_spec(module_loss)).batches()[0])

    def long(res):
        seed = dict(zip(res.runs["run_id"], res.runs["seed"]))
        t = res.trajectories
        return pd.DataFrame({"seed": t["run_id"].astype(str).map(seed), "step": t["step"],
                             "variable": t["variable"].astype(str).replace(renamed_norms()),
                             "value": t["value"]})

    both = long(ref).merge(long(got), on=["seed", "step", "variable"], suffixes=("_mog", "_mod"))
    shared = {*(f"norm.{p}.{w}{i}" for p, n in (("gen", 3), ("disc", 2)) for w in "wb" for i in range(n)),
              "loss.gen", "loss.disc", "grad_norm.gen", "grad_norm.disc", "D.real", "D.fake",
              "fit.energy"}
    assert set(both["variable"]) == shared
    assert len(both) == len(SEEDS) * 21 * len(shared)
    np.testing.assert_allclose(both["value_mod"], both["value_mog"], rtol=RTOL, atol=0)
    first, last = (both[both["step"] == s].set_index(["seed", "variable"])["value_mod"] for s in (0, 20))
    assert (first != last).all()   # every variable moved: the comparison is not of a still point

    for r in range(len(SEEDS)):
        want, have = ref.runs["final"][r], got.runs["final"][r]
        for player in ("gen", "disc"):
            mine = as_mlp(player, {k: v[None] for k, v in have[player].items()})
            for k, v in want[player].items():
                np.testing.assert_allclose(mine[k][0].numpy(), v.numpy(), rtol=RTOL, atol=1e-14)


# --- 2. dropout from each run's own stream -----------------------------------------------------

def keep_module(p: float, streams) -> BatchedModule:
    spec = validate_spec({"module": NETS, "class": "Keep", "kwargs": {"p": p}}, "game.generator")
    return BatchedModule(spec, "game.generator", torch.float64, "cpu", streams=streams)


def test_dropout_masks_are_each_runs_own_stream_and_keep_one_minus_p():
    """``Keep`` on ones returns the noise m/(1 − p): exactly [u ≥ p]/(1 − p) with u the stream's
    next ``fast_uniform`` draw for every run; runs of different seeds get different masks, runs of
    one seed the same (common random numbers); each run keeps 1 − p of 20,000 units (5 standard
    errors), and consecutive calls draw new masks."""
    p, n, d = 0.3, 200, 100
    seeds = torch.tensor([4, 9, 4, 123456])
    rng = Streams(seeds)
    net = keep_module(p, lambda: rng)
    params = net.init_params(seeds.tolist(), 1)
    ones = torch.ones(4, n, d, dtype=torch.float64)
    first, second = net(params, ones), net(params, ones)
    assert rng.counter == 2
    again = Streams(seeds)
    for out in (first, second):
        u = again.fast_uniform(n, d, dtype=torch.float64)
        assert torch.equal(out, (u >= p).double() / (1 - p))
    assert not torch.equal(first, second)
    assert torch.equal(first[0], first[2]) and not torch.equal(first[0], first[1])
    assert not torch.equal(first[1], first[3])
    kept = (first > 0).double().mean((1, 2)).numpy()
    se = math.sqrt(p * (1 - p) / (n * d))
    assert np.all(np.abs(kept - (1 - p)) < 5 * se), kept
    alone = Streams(seeds[1:2])
    one = keep_module(p, lambda: alone)
    assert torch.equal(one({k: v[1:2] for k, v in params.items()}, ones[1:2])[0], first[1])


def test_dropout_is_differentiated_through_its_mask():
    """The gradient of Σ out = Σ x·m/(1 − p)·scale with respect to the layer's one parameter is
    Σ x·m/(1 − p), run by run: the mask is a constant of the graph."""
    p = 0.5
    rng = Streams(torch.tensor([1, 2]))
    net = keep_module(p, lambda: rng)
    params = {k: v.requires_grad_() for k, v in net.init_params([1, 2], 1).items()}
    x = torch.randn(2, 30, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = net(params, x)
    (g,) = torch.autograd.grad(out.sum(), [params["scale"]])
    noise = (Streams(torch.tensor([1, 2])).fast_uniform(30, 5, dtype=torch.float64) >= p).double() / (1 - p)
    torch.testing.assert_close(g, (x * noise).sum((1, 2)), rtol=1e-14, atol=0)


def test_eval_mode_is_the_identity_and_draws_nothing():
    """In ``evaluating()`` dropout is the identity (the same bits as no dropout layer) and the
    streams do not move; the training mode is back after the block."""
    rng = Streams(torch.tensor([1, 2]))
    net = keep_module(0.4, lambda: rng)
    params = net.init_params([1, 2], 1)
    x = torch.randn(2, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with net.evaluating():
        assert torch.equal(net(params, x), x)
    assert rng.counter == 0 and net.base.training
    assert not torch.equal(net(params, x), x) and rng.counter == 1


@pytest.mark.invariance
@pytest.mark.parametrize("rule", ["simultaneous", {"name": "unrolled", "k": 2}])
def test_a_run_with_dropout_alone_equals_it_in_a_batch_of_8(rule):
    """Bit for bit, with dropout (p = 0.3) after every hidden layer of both players: parameter
    norms, losses, gradient norms, metrics; and the dropout is live (other numbers than p = 0)."""
    spec = module_spec(dropout=0.3, rules=[rule], seeds=8, steps=6, record_every=2)
    (batch,) = make_study(spec).batches()
    together = assert_alone_as_in_batch(batch).trajectories
    plain = run_batch(make_study(module_spec(rules=[rule], seeds=8, steps=6, record_every=2)
                                 ).batches()[0]).trajectories
    loss = lambda t: t.loc[(t["variable"] == "loss.disc") & (t["step"] == 0), "value"].to_numpy()  # noqa: E731
    assert not np.array_equal(loss(together), loss(plain))


def test_metrics_are_computed_in_eval_mode():
    """With dropout in both players, the recorded metrics are those of the same weights without
    dropout layers, bit for bit, every time (no draws: the training streams do not move); the
    training losses are not."""
    drop = build("module_gan", module_spec(dropout=0.5)["game"])
    plain = build("module_gan", module_spec()["game"])
    seeds = [2, 7]
    wd, wp = drop.init_params(seeds), plain.init_params(seeds)
    for player in ("gen", "disc"):   # the same weights under other names (Dropout shifts indices)
        assert [v.tolist() for v in wd[player].values()] == [v.tolist() for v in wp[player].values()]
    keys = torch.tensor(seeds)
    with drop.using(Streams(keys)):
        first, second = drop.metrics(wd), drop.metrics(wd)
        assert drop.rng.counter == 0
        with_dropout = drop.losses(wd)
    with plain.using(Streams(keys)):
        ref = plain.metrics(wp)
        without = plain.losses(wp)
    assert first.keys() == ref.keys() >= {"D.real", "D.fake", "fit.energy"}
    for k in ref:
        assert torch.equal(first[k], second[k]) and torch.equal(first[k], ref[k]), k
    assert not torch.equal(with_dropout["disc"], without["disc"])


@pytest.mark.parametrize("layer, name", [("nn.Dropout2d(0.3)", "Dropout2d"),
                                         ("nn.AlphaDropout(0.2)", "AlphaDropout"),
                                         ("nn.Dropout1d(0.1)", "Dropout1d")])
def test_other_dropout_layers_are_refused_naming_the_layer_and_what_works(tmp_path, layer, name):
    path = tmp_path / "nets.py"
    path.write_text("from torch import nn\n"
                    "class G(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    f"        self.l = nn.Sequential(nn.Linear(8, 16), {layer}, nn.Linear(16, 2))\n"
                    "    def forward(self, z): return self.l(z)\n")
    spec = module_spec()
    spec["game"]["generator"] = {"module": str(path), "class": "G"}
    with pytest.raises(StudyError) as e:
        make_study(spec)
    text = str(e.value)
    assert e.value.key == "game.generator" and "\n" not in text
    assert f"G layer 'l.1' ({name})" in text and "use nn.Dropout or p=0" in text, text


# --- 3. compiled stepping ------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_compile_on_steps_module_gan_eagerly_and_says_why(dropout):
    """module_gan draws minibatches and latents (and dropout masks) from counter-based streams
    whose counter is Python state, which a traced graph cannot advance: with ``compile: on`` the
    probe sees the draws and the batch steps eagerly, with that reason in ``stepping_note`` and the
    numbers of ``compile: off``, bit for bit."""
    (batch,) = make_study(module_spec(dropout=dropout, steps=12, record_every=2)).batches()
    off, on = run_batch(batch, compile="off"), run_batch(batch, compile="on")
    assert (on.runs["stepping"] == "eager").all()
    assert (on.runs["stepping_note"] == "the game draws random numbers (not traced)").all()
    pd.testing.assert_frame_equal(on.trajectories, off.trajectories, check_exact=True)


def fixed_samples(self: ModuleGan) -> tuple[torch.Tensor, torch.Tensor]:
    """One minibatch and one set of latents per run, drawn once from a stream of their own and
    then kept (so the game draws nothing while stepping)."""
    keys = self.rng.keys
    if getattr(self, "_fixed", (None,))[0] is not keys:
        rng = Streams(keys, 99)
        self._fixed = (keys, self.sampler.sample(rng, self.batch), self.latents(rng, self.batch))
    return self._fixed[1], self._fixed[2]


@pytest.mark.slow
def test_module_gans_players_compile_and_match_eager_stepping_when_nothing_is_drawn(monkeypatch):
    """The fused path itself (``gamedyn.fuse``: make_fx of the step and record, with the players'
    ``vmap``/``functional_call``, then Inductor) on module_gan, its draws replaced by fixed samples:
    it compiles (no fallback) and agrees with eager stepping to rounding (measured, relative: 7e-12
    in fit.energy, 4e-14 in a bias norm near 0, the rest within 3e-16). ``vmap`` under
    ``torch.compile``'s Dynamo has open issues (pytorch#109025, #140883); gamedyn's fused path does
    not go through Dynamo. About 30 s cold (Inductor's cache then makes reruns fast)."""
    monkeypatch.setattr(fuse, "MAX_UNROLL", 2)
    monkeypatch.setattr(fuse, "PROBE_STEPS", 2)
    monkeypatch.setattr(ModuleGan, "real_samples", lambda self, n: self.minibatch(fixed_samples(self)[0]))
    monkeypatch.setattr(ModuleGan, "fake_samples",
                        lambda self, params: self.minibatch(self.generate(params, fixed_samples(self)[1])))
    spec = module_spec(steps=6, record_every=2, optimizer={"name": "adam", "lr": 1e-2, "beta1": 0.5})
    spec["game"]["generator"]["kwargs"].update(latent=4, hidden=8, layers=1)
    spec["game"]["discriminator"]["kwargs"].update(hidden=8)
    spec["game"].update(latent={"dim": 4, "dist": "normal"}, batch=16, eval_samples=32)
    (batch,) = make_study(spec).batches()
    eager, fused = run_batch(batch, compile="off"), run_batch(batch, compile="on")
    assert (fused.runs["stepping"] == "compiled").all(), fused.runs["stepping_note"].iloc[0]
    te, tf = eager.trajectories, fused.trajectories
    assert (te["variable"].astype(str).to_numpy() == tf["variable"].astype(str).to_numpy()).all()
    np.testing.assert_allclose(tf["value"], te["value"], rtol=1e-9, atol=1e-12)
