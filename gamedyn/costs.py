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

The GAN objectives
------------------
:func:`gan_losses` gives both players' losses for the ``gan``, ``nsgan`` and ``wgan`` objectives
from the discriminator's logits (the Dirac-GAN and the mixture games call it), and for the hinge and
relativistic pairing losses (the ``module_gan`` game; :data:`NAMED_LOSSES` names every loss by its
generator cost). Every log σ and
softplus here is :func:`log_sigmoid`, whose first and second derivatives are exact at any logit
(torch's softplus is the identity past 20, with derivative 1 instead of σ).

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

from .component import Choice

Tensor = torch.Tensor

#: log 4: V(D*, p_g) = −log 4 at p_g = p_d (Goodfellow et al. 2014, Thm. 1).
LOG4 = math.log(4.0)
VALUE_AT_EQUILIBRIUM = -LOG4


def log_sigmoid(a: Tensor) -> Tensor:
    """log σ(a), with first and second derivatives exact (to rounding) at any logit a.

        log σ(a) = min(a, 0) − log(1 + e^{−|a|}),     d/da = σ(−a),     d²/da² = −σ(a) σ(−a).

    Written as ``where(a < 0, a, 0) − log1p(exp(s))`` with s = ``where(a < 0, a, −a)`` = −|a|, so
    that autograd differentiates exp and log1p, both exact in relative terms, and the derivative at
    a = 0 comes out as ½ (s′(0) = −1, the branch a ≥ 0). ``F.softplus`` switches to the identity
    past |a| = 20 (its gradient then is exactly 1 instead of σ, an error up to e⁻²⁰ ≈ 2·10⁻⁹), and
    ``F.logsigmoid``'s double backward σ(a)(σ(a) − 1) cancels (10⁻³ relative at a = 30, 0 from
    a ≈ 37): the Hessians of consensus optimisation, SGA and the stability analysis need both.
    Built from where, exp, log1p and − only, whose CPU kernels give the same bits for an element
    whether it falls in a vectorised loop's body or its scalar tail (torch's sigmoid, softplus and
    logsigmoid's double backward do not, under AVX2), so a run's value does not depend on the size
    of its batch (tests/test_exact_gradients.py)."""
    neg = a < 0
    return torch.where(neg, a, 0.0) - torch.log1p(torch.exp(torch.where(neg, a, -a)))


def zeta(a: Tensor) -> Tensor:
    """The softplus ζ(a) = log(1 + eᵃ) = −log σ(−a) (so log σ(a) = −ζ(−a) and
    log(1 − σ(a)) = −ζ(a)); exact derivatives ζ′ = σ, ζ″ = σ(a)σ(−a) at any a (:func:`log_sigmoid`)."""
    return -log_sigmoid(-a)


def sigmoid(a: Tensor) -> Tensor:
    """σ(a) = 1 / (1 + e^{−a}), as e^{a} / (1 + e^{a}) for a < 0 and 1 / (1 + e^{−a}) for a ≥ 0:
    exact in relative terms at any a (e^{−|a|} never overflows), and built from where, exp, + and ÷,
    which give the same bits alone or in a batch (``torch.sigmoid`` does not on CPU under AVX2).
    For values (discriminator outputs, cost slopes); differentiate :func:`log_sigmoid` instead."""
    neg = a < 0
    e = torch.exp(torch.where(neg, a, -a))
    return torch.where(neg, e, 1.0) / (1.0 + e)


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
                             lambda a: -zeta(a), lambda a: -sigmoid(a)),
    "non_saturating": GeneratorCost("non_saturating", "−log D = ζ(−a)",
                                    lambda a: zeta(-a), lambda a: -sigmoid(-a)),
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


# --- the GAN objectives -------------------------------------------------------------------------

#: The objectives of :func:`gan_losses` that the toy games accept (their analyses assume these).
GAN_LOSSES: tuple[str, ...] = ("gan", "nsgan", "wgan")
#: Every objective of :func:`gan_losses`: :data:`GAN_LOSSES`, the hinge loss and the relativistic
#: pairing loss (for discriminators of any architecture, e.g. the ``module_gan`` game).
OBJECTIVES: tuple[str, ...] = (*GAN_LOSSES, "hinge", "relativistic")
#: A GAN's loss named as a user names it (``module_gan``'s ``loss:``): (objective, generator cost)
#: for :func:`gan_losses`. The paper's three generator costs play against the discriminator of V.
NAMED_LOSSES: dict[str, tuple[str, str]] = {
    "minimax": ("gan", "minimax"),
    "non_saturating": ("gan", "non_saturating"),
    "maximum_likelihood": ("gan", "maximum_likelihood"),
    "wgan": ("wgan", "auto"),
    "hinge": ("hinge", "auto"),
    "relativistic": ("relativistic", "auto"),
}


def resolved_cost(loss: str, gen_cost: str = "auto") -> str | None:
    """The generator cost a ``loss`` plays with: ``gen_cost``, or for ``auto`` ``minimax`` (gan),
    ``non_saturating`` (nsgan) or None (wgan: the critic gives no probability)."""
    if loss not in OBJECTIVES:
        raise ValueError(f"unknown GAN loss {loss!r}; accepted: {', '.join(OBJECTIVES)}")
    if gen_cost != "auto":
        return gen_cost
    return {"gan": "minimax", "nsgan": "non_saturating"}.get(loss)


def gan_losses(loss: str | Choice, a_real: Tensor, w_real: Tensor, a_fake: Tensor, w_fake: Tensor,
               gen_cost: str = "auto") -> dict[str, Tensor]:
    """The players' losses [R] (each minimises its own) from the discriminator's logits on data
    ``a_real`` and on generated samples ``a_fake`` [R, n], with weights ``w_*`` (quadrature weights
    or 1/n for a minibatch):

    - ``gan`` (Goodfellow et al. 2014, arXiv 1406.2661, eq. 1): the discriminator's loss is −V with
      V = E_{p_d} log σ(a) + E_{p_g} log(1 − σ(a)) = −E_{p_d} ζ(−a) − E_{p_g} ζ(a) (:func:`value`);
      the generator minimises E_{p_g} f(a) for the cost ``gen_cost`` (:data:`COSTS`; Goodfellow
      2014, arXiv 1412.6515, §3; Goodfellow 2016, arXiv 1701.00160, §3.2.3). ``minimax``
      (f = −ζ(a) = log(1 − D), the default) is recorded as V itself, the zero-sum loss, which differs
      from E_{p_g} f by E_{p_d} log σ(a), a term constant in the generator.
    - ``nsgan``: ``gan`` with the non-saturating cost f = ζ(−a) = −log D (Goodfellow et al. 2014,
      §3), the generator's loss E_{p_g} ζ(−a).
    - ``wgan`` (Arjovsky, Chintala & Bottou 2017, arXiv 1701.07875, eq. 3): a is the critic's value,
      V = E_{p_d} a − E_{p_g} a; the critic's loss is −V, the generator's V. ``gen_cost`` must be
      ``auto``.
    - ``hinge`` (Lim & Ye 2017, arXiv 1705.02894; Miyato et al. 2018, arXiv 1802.05957, eq. 17):
      the discriminator's loss E_{p_d} max(0, 1 − a) + E_{p_g} max(0, 1 + a), the generator's
      −E_{p_g} a.
    - ``relativistic``: the relativistic pairing loss (RpGAN: Jolicoeur-Martineau 2018,
      arXiv 1807.00734; the loss of R3GAN, Huang et al. 2024, arXiv 2501.05441, eq. 1), which pairs
      the i-th real and generated samples (equal counts required): the discriminator's loss
      Σ_i w_i ζ(−(a(x_i) − a(G(z_i)))), the generator's Σ_i w_i ζ(−(a(G(z_i)) − a(x_i))), with the
      real samples' weights w. R3GAN trains it with R1 + R2 (regularizers ``r1`` and ``r2``).

    Every log σ and ζ has exact derivatives of first and second order at any logit
    (:func:`log_sigmoid`). ``loss`` may be a per-run :class:`~gamedyn.component.Choice` of these:
    each run gets its own loss's numbers."""
    if isinstance(loss, Choice):
        return loss.select(lambda name, m: gan_losses(
            name, Choice.masked(m, a_real), w_real, Choice.masked(m, a_fake), w_fake, gen_cost))
    if loss == "wgan":
        v = (w_real * a_real).sum(-1) - (w_fake * a_fake).sum(-1)
        return {"gen": v, "disc": -v}
    if loss == "hinge":
        disc = (w_real * torch.relu(1.0 - a_real)).sum(-1) + (w_fake * torch.relu(1.0 + a_fake)).sum(-1)
        return {"gen": -(w_fake * a_fake).sum(-1), "disc": disc}
    if loss == "relativistic":
        if a_real.shape != a_fake.shape:
            raise ValueError(f"the relativistic loss pairs real and generated samples: got "
                             f"{a_real.shape[-1]} real and {a_fake.shape[-1]} generated")
        gap = a_real - a_fake
        return {"gen": (w_real * zeta(gap)).sum(-1), "disc": (w_real * zeta(-gap)).sum(-1)}
    v = value(a_real, w_real, a_fake, w_fake)
    cost = resolved_cost(loss, gen_cost)
    gen = v if cost == "minimax" else (w_fake * generator_cost(cost).f(a_fake)).sum(-1)
    return {"gen": gen, "disc": -v}


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


def gauss_hermite(n: int, dim: int | None = None, dtype: torch.dtype = torch.float64,
                  device: str = "cpu") -> tuple[Tensor, Tensor]:
    """Gauss–Hermite nodes and weights for E_{u~N(0, I)} h(u) ≈ Σ w h(u) (probabilists' form,
    weights summing to 1; ``numpy.polynomial.hermite_e.hermegauss``): exact for polynomials of
    degree ≤ 2n − 1 in each coordinate.

    ``dim`` None: nodes u [n] and weights w [n] in one dimension. ``dim`` = d: the tensor-product
    grid, nodes [nᵈ, d] and weights w_{i₁…i_d} = w_{i₁} ⋯ w_{i_d} [nᵈ] (instance noise integrates
    over ε ~ N(0, I_d) this way). The 1-D games use :func:`normal_nodes` instead (see the module
    docstring)."""
    u, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    if dim is not None:
        u = np.stack(np.meshgrid(*[u] * dim, indexing="ij"), -1).reshape(-1, dim)
        w = np.prod(np.stack(np.meshgrid(*[w] * dim, indexing="ij"), -1).reshape(-1, dim), 1)
    return (torch.as_tensor(u, dtype=dtype, device=device),
            torch.as_tensor(w, dtype=dtype, device=device))


def expect(values: Tensor, weights: Tensor) -> Tensor:
    """Σ weights · values over the last axis: an expectation from quadrature or a minibatch."""
    return (weights * values).sum(-1)
