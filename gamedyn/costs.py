"""The distinguishability value function, the optimal discriminator and the generator costs.

One module owns the quantities that Goodfellow, "On distinguishability criteria for estimating
generative models" (ICLR 2015 workshop, arXiv 1412.6515) puts side by side, so that NCE, SCE, MLE
and every GAN game of gamedyn compute them the same way.

The value function
------------------
A classifier p_c(y = 1 | x) = D(x) = σ(a(x)) with logit a tells data (y = 1, x ~ p_d) from
generated samples (y = 0, x ~ p_g). The value function (Goodfellow et al. 2014, arXiv 1406.2661,
eq. 1; Gutmann & Hyvärinen 2010 with noise-to-data ratio 1) is

    V(p_c, p_g) = E_{x~p_d} log σ(a(x)) + E_{x~p_g} log(1 − σ(a(x)))
                = −E_{p_d} ζ(−a) − E_{p_g} ζ(a),                    ζ = softplus, ζ(a) = log(1 + eᵃ).

For a fixed p_g it is maximised by D*(x) = p_d(x) / (p_d(x) + p_g(x)), i.e. by the logit
a*(x) = log p_d(x) − log p_g(x) (Goodfellow et al. 2014, Prop. 1), where
V(D*, p_g) = −log 4 + 2 JSD(p_d ‖ p_g); at p_g = p_d, D* ≡ ½ and V = −log 4 (their Thm. 1).

The generator costs
-------------------
The generator minimises J(p_g) = E_{x~p_g} f(a(x)), a per-sample cost f of the discriminator's
logit (Goodfellow 2014, arXiv 1412.6515, §3; Goodfellow 2016, arXiv 1701.00160, §3.2.3, Fig. 16):

========================  =================  ==============  ===============================
name                      f(a)               f in D          f′(a) = df/da (the *slope*)
========================  =================  ==============  ===============================
``minimax``               −ζ(a)              log(1 − D)      −σ(a)  = −D
``non_saturating``        ζ(−a)              −log D          −σ(−a) = −(1 − D)
``maximum_likelihood``    −exp(a)            −D / (1 − D)    −exp(a) = −D / (1 − D)
========================  =================  ==============  ===============================

With f held fixed, ∇_θ J = E_{p_g}[f(x) ∇_θ log p_g(x)]. The maximum-likelihood (forward KL)
gradient is −E_{p_d} ∇_θ log p_g = E_{p_g}[−(p_d/p_g) ∇_θ log p_g], which is the generator's gradient
when f = −p_d/p_g = −exp(a*): the ``maximum_likelihood`` cost is exact only against the *optimal*
discriminator. Goodfellow's tutorial writes the costs with a factor ½ (J = −½ E exp(σ⁻¹(D)));
a constant factor rescales the gradient and changes nothing else, so it is left out here.
Adding a constant to f changes nothing either (E_{p_g}[c ∇ log p_g] = 0): only f's shape in a
matters. Pathwise (reparameterised) gradients E_z[f′(a(G(z))) a′(G(z)) ∂G/∂θ] have the same
expectation; every sample is weighted by |f′(a)|: D, 1 − D or e^{a} = D/(1 − D).

Quadrature
----------
Expectations under 1-D Gaussians (and mixtures of them) are computed without Monte Carlo noise by
:func:`normal_nodes`: the trapezoid rule in the standardised variable u (x = m + s·u) on
[−width, width] with uniformly spaced nodes. For smooth integrands that decay like Gaussians it
converges geometrically (error ~ exp(−2π²/h²) for node spacing h relative to the integrand's width;
Trefethen & Weideman 2014, SIAM Review 56(3), "The exponentially convergent trapezoidal rule").
The integrands here include density ratios: under p_g, the maximum-likelihood cost integrates
e^{a*} = p_d/p_g, i.e. it lives where p_d does, which may be far out and narrow in p_g's units.
Uniform spacing resolves such a bump wherever it sits inside the range, where Gauss–Hermite
(:func:`gauss_hermite`), exact for polynomials, places its nodes ever more sparsely away from the
centre and fails (tests/test_costs.py has the example). The games default to 801 nodes on ±16
standard deviations (spacing 0.04 σ): exact to ~1e-12 while the other distribution lies within
±16 σ and is no narrower than ~0.05 σ. Mass beyond the range is dropped. The nodes' weights reach
e^{−128}: use float64 (the study default) with exact expectations, or width ≤ 12 in float32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: log 4: V(D*, p_g) = −log 4 at p_g = p_d (Goodfellow et al. 2014, Thm. 1).
LOG4 = math.log(4.0)
VALUE_AT_EQUILIBRIUM = -LOG4


def zeta(a: Tensor) -> Tensor:
    """The softplus ζ(a) = log(1 + eᵃ) (so log σ(a) = −ζ(−a) and log(1 − σ(a)) = −ζ(a))."""
    return F.softplus(a)


def value(a_real: Tensor, w_real: Tensor, a_fake: Tensor, w_fake: Tensor) -> Tensor:
    """V = Σ w_real log σ(a_real) + Σ w_fake log(1 − σ(a_fake)) over the last axis.

    ``a_*`` are the classifier's logits at data / generated points and ``w_*`` their weights
    (quadrature weights or 1/n for a minibatch), so that V estimates
    E_{p_d} log D + E_{p_g} log(1 − D) (Goodfellow et al. 2014, eq. 1). Shapes [R, n] → [R].
    """
    return -(w_real * zeta(-a_real)).sum(-1) - (w_fake * zeta(a_fake)).sum(-1)


def optimal_logit(log_p_data: Tensor, log_p_gen: Tensor) -> Tensor:
    """The logit of the optimal discriminator, a*(x) = log p_d(x) − log p_g(x)."""
    return log_p_data - log_p_gen


def optimal_discriminator(p_data: Tensor | np.ndarray, p_gen: Tensor | np.ndarray):
    """D*(x) = p_d(x) / (p_d(x) + p_g(x)) (Goodfellow et al. 2014, Prop. 1)."""
    return p_data / (p_data + p_gen)


@dataclasses.dataclass(frozen=True)
class GeneratorCost:
    """A per-sample generator cost f(a) of the discriminator's logit a, and its slope f′(a)."""

    name: str
    formula: str
    f: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor], Tensor]

    def of_D(self, D: Tensor) -> Tensor:
        """f as a function of D = σ(a) (the x-axis of Goodfellow 2016, Fig. 16)."""
        return self.f(torch.logit(D))

    def weight(self, a: Tensor) -> Tensor:
        """|f′(a)|: how much a sample with logit a weighs in the generator's gradient
        (D, 1 − D or e^{a} = D/(1 − D))."""
        return self.slope(a).abs()


COSTS: dict[str, GeneratorCost] = {
    "minimax": GeneratorCost("minimax", "log(1 − D) = −ζ(a)",
                             lambda a: -zeta(a), lambda a: -torch.sigmoid(a)),
    "non_saturating": GeneratorCost("non_saturating", "−log D = ζ(−a)",
                                    lambda a: zeta(-a), lambda a: -torch.sigmoid(-a)),
    "maximum_likelihood": GeneratorCost("maximum_likelihood", "−D/(1 − D) = −exp(a)",
                                        lambda a: -torch.exp(a), lambda a: -torch.exp(a)),
}
COST_NAMES: tuple[str, ...] = tuple(COSTS)


def generator_cost(name: str) -> GeneratorCost:
    """The cost called ``name`` (a ValueError lists the accepted names)."""
    try:
        return COSTS[name]
    except KeyError:
        raise ValueError(f"unknown generator cost {name!r}; accepted: {', '.join(COSTS)}") from None


# --- quadrature -------------------------------------------------------------------------------

def normal_nodes(n: int, width: float, dtype: torch.dtype = torch.float64,
                 device: str = "cpu") -> tuple[Tensor, Tensor]:
    """Nodes u [n] and weights w [n] with Σ w h(u) ≈ E_{u~N(0,1)} h(u): the trapezoid rule on
    [−width, width] with weights ∝ φ(u), normalised to sum to 1 (so E[1] = 1 exactly).
    For x = m + s·u the same weights give E_{x~N(m, s²)} h(x); gradients in m and s then flow
    through the nodes (the pathwise form)."""
    u = np.linspace(-width, width, n)
    w = np.exp(-0.5 * u**2)
    w[[0, -1]] *= 0.5
    w /= w.sum()
    return (torch.as_tensor(u, dtype=dtype, device=device),
            torch.as_tensor(w, dtype=dtype, device=device))


def gauss_hermite(n: int, dtype: torch.dtype = torch.float64, device: str = "cpu"
                  ) -> tuple[Tensor, Tensor]:
    """Gauss–Hermite nodes and weights for E_{u~N(0,1)} h(u) (probabilists' form, weights summing
    to 1): exact for polynomials of degree ≤ 2n − 1. Provided for comparison; the games use
    :func:`normal_nodes` (see the module docstring)."""
    u, w = np.polynomial.hermite_e.hermegauss(n)
    return (torch.as_tensor(u, dtype=dtype, device=device),
            torch.as_tensor(w / w.sum(), dtype=dtype, device=device))


def expect(values: Tensor, weights: Tensor) -> Tensor:
    """Σ weights · values over the last axis: an expectation from quadrature or a minibatch."""
    return (weights * values).sum(-1)
