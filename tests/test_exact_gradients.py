"""Gradients of log σ, softplus and the GAN objectives are exact at any logit, in float64.

torch's ``F.softplus`` switches to the identity past its threshold (|t| ≥ 20) and its backward then
returns exactly 1 instead of σ(t): an error of up to e⁻²⁰ ≈ 2·10⁻⁹ in the field. ``F.logsigmoid``'s
first derivative is exact, but its second derivative is computed as σ(t)(σ(t) − 1), which cancels
(≈10⁻³ relative at t = 30) and is exactly 0 from t ≈ 37 on. The references below are closed forms
evaluated with Python floats (``scipy.special.expit`` for σ), which are exact to a few ulp:

    d/dt log σ(t) = σ(−t),   d²/dt² log σ(t) = −σ(t) σ(−t),   ζ(t) = softplus(t) = −log σ(−t).
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import expit

from gamedyn import costs
from gamedyn.games import GAMES
from gamedyn.rules import Context

T = torch.float64
MAGNITUDES = (0.0, 5.0, 19.0, 21.0, 30.0, 50.0)
LOGITS = sorted({s * m for m in MAGNITUDES for s in (1.0, -1.0)})
RTOL = 1e-15


def sig(t):
    """σ(t) = 1 / (1 + e^{−t}), exact to an ulp or two at any t (scipy's expit)."""
    return expit(np.asarray(t, dtype=float))


def log_sig(t: float) -> float:
    """log σ(t) = −log(1 + e^{−t}) (t ≥ 0) or t − log(1 + e^{t}) (t < 0), in Python floats."""
    return -math.log1p(math.exp(-t)) if t >= 0 else t - math.log1p(math.exp(t))


def close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=0.0)


def derivatives(f, t):
    """f(t), f′(t), f″(t) by autograd at the points ``t`` (a list of floats)."""
    x = torch.tensor(t, dtype=T, requires_grad=True)
    y = f(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    return y.detach().numpy(), g.detach().numpy(), h.numpy()


# --- the primitives -----------------------------------------------------------------------------

def test_log_sigmoid_its_derivative_and_its_curvature_are_exact():
    t = np.array(LOGITS)
    y, g, h = derivatives(costs.log_sigmoid, LOGITS)
    close(y, [log_sig(v) for v in LOGITS])
    close(g, sig(-t))
    close(h, -sig(t) * sig(-t), rtol=4e-16 * 4)


def test_softplus_and_sigmoid_are_exact():
    t = np.array(LOGITS)
    y, g, h = derivatives(costs.zeta, LOGITS)
    close(y, [-log_sig(-v) for v in LOGITS])
    close(g, sig(t))
    close(h, sig(t) * sig(-t), rtol=4e-16 * 4)
    close(costs.sigmoid(torch.tensor(LOGITS, dtype=T)).numpy(), sig(t))


# --- the Dirac-GAN field -----------------------------------------------------------------------

def dirac(loss):
    cls = GAMES.get("dirac")
    return cls.build([cls.resolve({"loss": loss}, "game")], T)


@pytest.mark.parametrize("loss", ["gan", "nsgan"])
def test_dirac_field_is_exact_at_large_logits(loss):
    """∇_θ L_gen = ψ σ(−ψθ) (gan) or ψ σ(ψθ) (nsgan); ∇_ψ L_disc = −θ σ(−ψθ) (Mescheder et al.
    2018, arXiv 1801.04406, §2.1, with f′(t) = σ(−t)); θ = ½, ψ = 2t so that ψθ = t exactly."""
    theta = np.full(len(LOGITS), 0.5)
    psi = 2.0 * np.array(LOGITS)
    t = psi * theta
    params = {"gen": {"theta": torch.tensor(theta)}, "disc": {"psi": torch.tensor(psi)}}
    grads = Context(dirac(loss), {}).grad(params)
    close(grads["gen"]["theta"].numpy(), psi * sig(t if loss == "nsgan" else -t))
    close(grads["disc"]["psi"].numpy(), -theta * sig(-t))


@pytest.mark.parametrize("loss", ["gan", "nsgan"])
def test_dirac_field_jacobian_is_exact_at_large_logits(loss):
    """The diagonal of the field's Jacobian (what consensus optimisation, SGA and the stability
    analysis differentiate): ∂²L_gen/∂θ² = ∓ψ² σ(t)σ(−t) (gan −, nsgan +), ∂²L_disc/∂ψ² = θ² σ(t)σ(−t)."""
    theta = np.full(len(LOGITS), 0.5)
    psi = 2.0 * np.array(LOGITS)
    t = psi * theta
    game = dirac(loss)
    th = torch.tensor(theta, requires_grad=True)
    ps = torch.tensor(psi, requires_grad=True)
    losses = game.losses({"gen": {"theta": th}, "disc": {"psi": ps}})
    (g_th,) = torch.autograd.grad(losses["gen"].sum(), th, create_graph=True)
    (g_ps,) = torch.autograd.grad(losses["disc"].sum(), ps, create_graph=True)
    (h_th,) = torch.autograd.grad(g_th.sum(), th, retain_graph=True)
    (h_ps,) = torch.autograd.grad(g_ps.sum(), ps)
    curv = sig(t) * sig(-t)
    close(h_th.numpy(), (psi**2) * curv * (1.0 if loss == "nsgan" else -1.0), rtol=1e-15 * 2)
    close(h_ps.numpy(), (theta**2) * curv, rtol=1e-15 * 2)


# --- the generator costs and the value function ------------------------------------------------

@pytest.mark.parametrize("name", list(costs.COSTS))
def test_generator_cost_gradients_and_slopes_are_exact(name):
    """f′(a): minimax −σ(a), non_saturating −σ(−a), maximum_likelihood −eᵃ (Goodfellow 2016,
    arXiv 1701.00160, §3.2.3); autograd's gradient of f and the closed-form ``slope`` both."""
    a = np.array(LOGITS)
    expected = {"minimax": -sig(a), "non_saturating": -sig(-a),
                "maximum_likelihood": -np.array([math.exp(v) for v in LOGITS])}[name]
    cost = costs.generator_cost(name)
    _, g, _ = derivatives(cost.f, LOGITS)
    close(g, expected)
    close(cost.slope(torch.tensor(LOGITS, dtype=T)).numpy(), expected)
    close(cost.weight(torch.tensor(LOGITS, dtype=T)).numpy(), np.abs(expected))


def test_value_function_gradient_is_exact():
    """∂V/∂a_real = w σ(−a_real), ∂V/∂a_fake = −w σ(a_fake) for V = Σ w log σ(a_r) + Σ w log(1 − σ(a_f))."""
    a = torch.tensor([LOGITS], dtype=T, requires_grad=True)
    b = torch.tensor([LOGITS[::-1]], dtype=T, requires_grad=True)
    w = torch.full_like(a, 0.25)
    ga, gb = torch.autograd.grad(costs.value(a, w, b, w).sum(), (a, b))
    close(ga[0].numpy(), 0.25 * sig(-np.array(LOGITS)))
    close(gb[0].numpy(), -0.25 * sig(np.array(LOGITS[::-1])))


# --- the same bits alone or in a batch ---------------------------------------------------------

@pytest.mark.parametrize("fn", ["log_sigmoid", "zeta", "sigmoid"])
def test_primitives_give_the_same_bits_whatever_the_tensor_size(fn):
    """A value (and its first and second derivative) computed for one element alone equals the one
    computed inside a long tensor: on CPU, vectorised kernels treat a loop's scalar tail apart from
    its vector body, and torch's own sigmoid/softplus (and logsigmoid's double backward) round them
    differently by an ulp under AVX2. The forms here are built from ops that do not."""
    f = getattr(costs, fn)
    x = torch.randn(515, dtype=T, generator=torch.Generator().manual_seed(3)) * 30
    y, g, h = derivatives(f, x.tolist())
    for i in range(0, len(x), 7):
        yi, gi, hi = derivatives(f, [float(x[i])])
        assert (yi[0], gi[0], hi[0]) == (y[i], g[i], h[i]), (i, float(x[i]))
