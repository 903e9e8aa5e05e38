"""gamedyn.tree: the one module of tree plumbing (issue 17, item 8), against hand-written results."""

import pytest
import torch

from gamedyn import tree

DT = torch.float64


def _params():
    g = torch.Generator().manual_seed(0)
    return {"gen": {"w": torch.randn(3, 2, 2, generator=g, dtype=DT),
                    "b": torch.randn(3, generator=g, dtype=DT)},
            "disc": {"v": torch.randn(3, 4, generator=g, dtype=DT)}}


def test_leaves_follow_the_template_order_and_unflatten_inverts_them():
    p = _params()
    shuffled = {"disc": p["disc"], "gen": {"b": p["gen"]["b"], "w": p["gen"]["w"]}}
    assert [x is y for x, y in zip(tree.leaves(shuffled, p), tree.leaves(p))] == [True] * 3
    state = (p, [torch.ones(3), {"step": torch.zeros(3, dtype=torch.int64)}], None)
    back = tree.unflatten(state, tree.leaves(state))
    assert isinstance(back, tuple) and isinstance(back[1], list) and back[2] is None
    assert back[1][1]["step"] is state[1][1]["step"]
    assert [path for path, _ in tree.paths(state)][:3] == [(0, "gen", "w"), (0, "gen", "b"), (0, "disc", "v")]
    assert tree.get(state, (1, 1, "step")) is state[1][1]["step"]


def test_run_count_vdot_and_norm_are_per_run():
    p = _params()
    assert tree.n_runs(p) == 3
    assert tree.first(p) is p["gen"]["w"]
    by_hand = torch.stack([sum((p[pl][k][r] ** 2).sum() for pl in p for k in p[pl]) for r in range(3)])
    torch.testing.assert_close(tree.vdot(p, p), by_hand, rtol=1e-15, atol=0)
    torch.testing.assert_close(tree.norm(p), by_hand.sqrt(), rtol=1e-15, atol=0)
    flat = tree.ravel(p)
    assert flat.shape == (3, 4 + 1 + 4)
    torch.testing.assert_close(tree.vdot(flat, 2 * flat), 2 * by_hand, rtol=1e-15, atol=0)


def test_ravel_and_unravel_round_trip_as_views():
    p = _params()
    flat = tree.ravel(p).clone().requires_grad_(True)
    back = tree.unravel(flat, p)
    for x, y in zip(tree.leaves(back), tree.leaves(p)):
        assert torch.equal(x, y)
    (g,) = torch.autograd.grad(tree.vdot(back, back).sum(), flat)   # gradients reach ``flat``
    torch.testing.assert_close(g, 2 * flat.detach())


def test_where_picks_per_run_and_refuses_leaves_without_the_run_axis():
    p = _params()
    q = tree.map(torch.neg, p)
    mask = torch.tensor([True, False, True])
    out = tree.where(mask, p, q)
    for x, a, b in zip(tree.leaves(out), tree.leaves(p), tree.leaves(q)):
        assert torch.equal(x[0], a[0]) and torch.equal(x[1], b[1]) and torch.equal(x[2], a[2])
    shared = torch.ones(5)
    assert tree.where(mask, {"c": shared}, {"c": shared})["c"] is shared
    with pytest.raises(TypeError, match="run axis"):
        tree.where(mask, {"c": torch.ones(5)}, {"c": torch.zeros(5)})


def test_grad_gives_zeros_where_the_output_does_not_depend_and_detach_cuts():
    x = {"a": torch.ones(2, requires_grad=True), "b": torch.ones(2, requires_grad=True)}
    g = tree.grad((3 * x["a"]).sum(), x)
    assert g["a"].tolist() == [3.0, 3.0] and g["b"].tolist() == [0.0, 0.0]
    d = tree.detach({"a": x["a"] * 2, "n": 4})
    assert not d["a"].requires_grad and d["n"] == 4
    z = tree.zeros_like(x, requires_grad=True)
    assert z["a"].requires_grad and z["b"].tolist() == [0.0, 0.0]
