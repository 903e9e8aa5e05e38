"""Adam and RMSProp against torch.optim, run by run, with per-run hyperparameters in one batch."""

import numpy as np
import pytest
import torch

from gamedyn.errors import StudyError
from gamedyn.optim import OPTIMIZERS

from .conftest import series, simulate

DT = torch.float64


def build(name, configs):
    cls = OPTIMIZERS.get(name)
    return cls.build([cls.resolve(c, "optimizer") for c in configs], DT)


def loss(w, b):
    """A small non-convex problem for one run (w [3], b scalar), or for all runs (w [R, 3], b [R])."""
    t = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    return (((w - t) ** 2).sum(-1) * (1.2 + torch.sin(b)) + 0.3 * b**2 + torch.cos(w[..., 0] * b)
            + 0.05 * (w**4).sum(-1))


def start(R):
    gen = torch.Generator().manual_seed(7)
    return (torch.randn(R, 3, generator=gen, dtype=DT) * 2,
            torch.randn(R, generator=gen, dtype=DT))


def check_against_torch(opt, make_torch, configs, steps=40):
    """Step gamedyn's optimizer on all runs at once and one torch.optim instance per run."""
    R = len(configs)
    w0, b0 = start(R)
    params = {"w": w0.clone(), "b": b0.clone()}
    state = opt.init(params)
    refs = []
    for r, c in enumerate(configs):
        w, b = w0[r].clone().requires_grad_(), b0[r].clone().requires_grad_()
        refs.append((w, b, make_torch([w, b], c)))
    for _ in range(steps):
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        gw, gb = torch.autograd.grad(loss(leaves["w"], leaves["b"]).sum(), [leaves["w"], leaves["b"]])
        params, state = opt.update({"w": gw, "b": gb}, state, params)
        for r, (w, b, ref) in enumerate(refs):
            ref.zero_grad()
            loss(w, b).backward()
            ref.step()
            torch.testing.assert_close(params["w"][r], w.detach(), rtol=1e-12, atol=1e-13)
            torch.testing.assert_close(params["b"][r], b.detach(), rtol=1e-12, atol=1e-13)
    return params, state


ADAM_RUNS = [
    {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    {"lr": 0.1, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
    {"lr": 0.05, "beta1": 0.0, "beta2": 0.5, "eps": 0.1},
    {"lr": 0.2, "beta1": 0.99, "beta2": 0.3, "eps": 1e-6},
]


def test_adam_matches_torch_optim_run_by_run():
    opt = build("adam", ADAM_RUNS)
    _, state = check_against_torch(
        opt, lambda ps, c: torch.optim.Adam(ps, lr=c["lr"], betas=(c["beta1"], c["beta2"]),
                                            eps=c["eps"], foreach=False),
        ADAM_RUNS)
    assert state["step"].dtype == torch.int64
    assert state["step"].tolist() == [40] * len(ADAM_RUNS)


RMS_RUNS = [
    {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0},
    {"lr": 0.05, "alpha": 0.5, "eps": 1e-2, "momentum": 0.9},
    {"lr": 0.002, "alpha": 0.0, "eps": 0.3, "momentum": 0.5},
]


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_matches_torch_optim_run_by_run(centered):
    # α = 0 with centering estimates a zero variance (s − ḡ² = g² − g²): torch rounds it below 0 (NaN)
    configs = [{**c, "centered": centered, "alpha": max(c["alpha"], 0.3) if centered else c["alpha"]}
               for c in RMS_RUNS]
    opt = build("rmsprop", configs)
    check_against_torch(
        opt, lambda ps, c: torch.optim.RMSprop(ps, lr=c["lr"], alpha=c["alpha"], eps=c["eps"],
                                               momentum=c["momentum"], centered=centered,
                                               foreach=False),
        configs)


def _one_step_state(name, configs):
    """(optimizer, params, grads, state) after one update, so that the second moments are > 0."""
    opt = build(name, configs)
    w, b = start(len(configs))
    params = {"w": w, "b": b}
    grads = {"w": torch.sin(3 * w) + 0.5, "b": torch.cos(b) + 0.2}
    params, state = opt.update(grads, opt.init(params), params)
    grads = {"w": torch.cos(2 * params["w"]) - 0.3, "b": 0.7 - params["b"]}
    return opt, params, grads, state


def _tensors(tree):
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _tensors(v)]
    return [tree]


CASES = [("adam", ADAM_RUNS), ("rmsprop", [{**c, "centered": True, "alpha": 0.5} for c in RMS_RUNS]),
         ("rmsprop", RMS_RUNS)]


@pytest.mark.parametrize(("name", "configs"), CASES)
def test_update_is_pure(name, configs):
    opt, params, grads, state = _one_step_state(name, configs)
    before = [t.clone() for t in _tensors(params) + _tensors(grads) + _tensors(state)]
    first = opt.update(grads, state, params)
    again = opt.update(grads, state, params)
    after = _tensors(params) + _tensors(grads) + _tensors(state)
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    assert all(torch.equal(x, y) for x, y in zip(_tensors(first[0]) + _tensors(first[1]),
                                                 _tensors(again[0]) + _tensors(again[1])))


@pytest.mark.parametrize(("name", "configs"), CASES)
def test_update_is_differentiable(name, configs):
    """Gradients flow through an update to params, grads and the floating state (checked against
    finite differences by torch.autograd.gradcheck), and to the per-run learning rates."""
    opt, params, grads, state = _one_step_state(name, configs)
    keys = [k for k in state if isinstance(state[k], dict)]
    flat = [params["w"], params["b"], grads["w"], grads["b"]] + [state[k][p] for k in keys
                                                                 for p in ("w", "b")]

    def f(*xs):
        p, g = {"w": xs[0], "b": xs[1]}, {"w": xs[2], "b": xs[3]}
        s = dict(state)
        for i, k in enumerate(keys):
            s[k] = {"w": xs[4 + 2 * i], "b": xs[5 + 2 * i]}
        new, new_state = opt.update(g, s, p)
        return (new["w"], new["b"], *[new_state[k][q] for k in keys for q in ("w", "b")])

    inputs = tuple(x.detach().clone().requires_grad_() for x in flat)
    assert torch.autograd.gradcheck(f, inputs)
    opt.lr = opt.lr.clone().requires_grad_()
    new, _ = opt.update(grads, state, params)
    (dlr,) = torch.autograd.grad(new["w"].sum() + new["b"].sum(), opt.lr)
    assert torch.isfinite(dlr).all() and (dlr != 0).all()


@pytest.mark.parametrize(("name", "key", "value"), [
    ("adam", "beta1", 1.0), ("adam", "beta1", -0.1), ("adam", "beta2", 1.0), ("adam", "lr", 0.0),
    ("adam", "eps", -1e-8), ("rmsprop", "alpha", 1.0), ("rmsprop", "alpha", -0.5),
    ("rmsprop", "lr", 0.0), ("rmsprop", "eps", -1.0),
])
def test_hyperparameters_are_validated(name, key, value):
    with pytest.raises(StudyError, match=f"optimizer.{key}"):
        OPTIMIZERS.get(name).resolve({key: value}, "optimizer")


def test_bounds_are_described():
    text = OPTIMIZERS.get("adam").describe()
    assert "beta1 = 0.9  [a number >= 0 and < 1]" in text


def _torch_play(opt_cls, kwargs, alternating, steps):
    """Two-player play on x·y (x from 1 descends xy, y from 1 ascends it), one torch optimizer each."""
    x = torch.tensor(1.0, dtype=DT, requires_grad=True)
    y = torch.tensor(1.0, dtype=DT, requires_grad=True)
    ox, oy = opt_cls([x], **kwargs), opt_cls([y], **kwargs)
    xs, ys = [1.0], [1.0]
    for _ in range(steps):
        if alternating:  # gen first: x moves, then y sees the new x
            ox.zero_grad()
            (x * y.detach()).backward()
            ox.step()
            oy.zero_grad()
            (-(x.detach() * y)).backward()
            oy.step()
        else:
            ox.zero_grad()
            oy.zero_grad()
            (x * y.detach()).backward()
            (-(x.detach() * y)).backward()
            ox.step()
            oy.step()
        xs.append(x.item())
        ys.append(y.item())
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize(("spec", "rule", "make"), [
    ({"name": "adam", "lr": [0.01, 0.1], "beta1": 0.5, "beta2": [0.9, 0.99]}, "simultaneous",
     lambda c: (torch.optim.Adam, {"lr": c["optimizer.lr"], "betas": (0.5, c["optimizer.beta2"])})),
    ({"name": "rmsprop", "lr": [0.01, 0.05], "momentum": [0.0, 0.5]},
     {"name": "alternating", "first": "gen"},
     lambda c: (torch.optim.RMSprop, {"lr": c["optimizer.lr"], "momentum": c["optimizer.momentum"]})),
])
def test_study_runs_with_the_optimizer_and_matches_torch(spec, rule, make):
    runs, traj = simulate("bilinear", rule, steps=30, init={"dist": "constant", "scale": 1.0},
                          optimizer=spec)
    assert len(runs) == 4 and runs["batch_id"].nunique() == 1  # per-run hyperparameters: one batch
    for _, row in runs.iterrows():
        cls, kwargs = make(row)
        xs, ys = _torch_play(cls, kwargs, alternating=rule != "simultaneous", steps=30)
        np.testing.assert_allclose(series(traj, "gen.x[0]", row["run_id"]), xs, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(series(traj, "disc.y[0]", row["run_id"]), ys, rtol=1e-12, atol=1e-14)
