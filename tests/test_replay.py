"""Replaying a call's recorded ATen operations (gamedyn.replay): the same values and gradients, bit
for bit, as the call itself (here a user's networks under vmap), and a refusal wherever a recording
could not stand for the call."""

from __future__ import annotations

import pytest
import torch

from gamedyn import alignment, replay
from gamedyn.games import GAMES
from tests.test_module_gan import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def nets(dtype=torch.float64):
    cls = GAMES.get("module_gan")
    game = cls.build([cls.resolve(TINY, "game")] * 5, dtype)
    params = game.init_params([3, 1, 4, 1, 5])
    return game, {p: {k: v.requires_grad_() for k, v in named.items()} for p, named in params.items()}


def _equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("player", ["gen", "disc"])
def test_a_replay_gives_the_calls_values_and_derivatives_bit_for_bit(player):
    game, params = nets()
    net = game.gen_net if player == "gen" else game.disc_net
    x = torch.randn(5, 7, 4, dtype=torch.float64) if player == "gen" else \
        torch.rand(5, 7, 1, 8, 8, dtype=torch.float64)
    p = params[player]
    rec = replay.record(net._vmapped, [p, x])
    assert rec is not None and 0 < len(rec)
    x2 = x * 0.5 + 0.1   # new inputs, same shapes
    mine, theirs = rec.run(p, x2), net._vmapped(p, x2)
    assert torch.equal(mine, theirs)
    w = list(p.values())
    g_mine = torch.autograd.grad(mine.square().sum(), w, create_graph=True)
    g_theirs = torch.autograd.grad(theirs.square().sum(), w, create_graph=True)
    _equal(g_mine, g_theirs)
    # second order: a Hessian-vector product through the replayed operations (unrolling, SGA)
    v = [torch.ones_like(t) for t in w]
    _equal(torch.autograd.grad(g_mine, w, v), torch.autograd.grad(g_theirs, w, v))


def test_the_players_call_their_replays_and_a_dispatch_mode_sees_the_vmapped_call():
    game, params = nets()
    z = torch.randn(5, 7, 4, dtype=torch.float64)
    first = game.gen_net(params["gen"], z)
    (rec,) = game.gen_net._replays.values()
    assert isinstance(rec, replay.Recording)
    assert torch.equal(game.gen_net(params["gen"], z), first)
    with torch.no_grad():   # another gradient setting: its own recording
        assert torch.equal(game.gen_net(params["gen"], z), first)
    assert len(game.gen_net._replays) == 2
    alignment.needed(lambda: game.gen_net(params["gen"], z))   # inside a dispatch mode: vmapped
    assert len(game.gen_net._replays) == 2


def two(x, y):
    return x * y


@pytest.mark.parametrize("fn, why", [
    (lambda x, y: x * y.sum().item(), "reads a value"),
    (lambda x, y: x * torch.rand_like(y), "draws"),
    (lambda x, y: x.add_(y), "writes into an input"),
    (lambda x, y: x.exp(), "ignores an input"),
])
def test_calls_a_recording_cannot_stand_for_are_refused(fn, why):
    x, y = torch.rand(3, 4), torch.rand(3, 4)
    assert replay.record(fn, [x, y]) is None, why
    assert replay.record(two, [x, y]) is not None


def test_identities_are_pruned_and_their_users_read_the_argument():
    x = torch.rand(3, 4, requires_grad=True)
    rec = replay.record(lambda a: (a.view(3, 4) * 1).expand(3, 4).exp(), [x])
    assert len(rec) == 1     # exp alone
    y = torch.rand(3, 4, requires_grad=True)
    torch.testing.assert_close(rec.run(y), y.exp(), rtol=0, atol=0)
    (g,) = torch.autograd.grad(rec.run(y).sum(), [y])
    assert torch.equal(g, y.exp())


def test_inside_a_torch_func_transform_the_players_call_vmap_and_record_nothing():
    game, params = nets()
    z = torch.randn(5, 7, 4, dtype=torch.float64)
    p = {k: v.detach() for k, v in params["gen"].items()}
    twice = torch.stack([z, 2 * z])
    mine = torch.func.vmap(lambda zz: game.gen_net(p, zz))(twice)
    assert not game.gen_net._replays
    for i in range(2):
        torch.testing.assert_close(mine[i], game.gen_net._vmapped(p, twice[i]), rtol=1e-12, atol=1e-12)
