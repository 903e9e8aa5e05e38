"""Claim 4: the generator costs against D(G(z)) — Goodfellow (2014, arXiv 1412.6515), reproduced as
Fig. 16 of Goodfellow's NIPS 2016 tutorial (arXiv 1701.00160) — their slopes in the logit, and what
the slopes do to training."""

from __future__ import annotations

from pathlib import Path

import torch

from ..costs import COST_NAMES, COSTS
from ..results import Results
from ._paper import COST_COLOURS, COST_LABELS, save
from .base import FIGURES, pyplot


@FIGURES.register("paper_cost_figure")
def paper_cost_figure(results: Results, path: str | Path) -> Path:
    """(a) Each cost f as a function of D(G(z)) (the tutorial's Fig. 16, without its factor ½).
    (b) Its slope |f′(a)| in the discriminator's logit a = σ⁻¹(D): the weight of a sample in the
    generator's gradient — the minimax cost's vanishes where the discriminator rejects the sample
    (a ≪ 0: saturation), the non-saturating cost's does not, the maximum-likelihood cost's grows
    without bound as D → 1. (c), (d) From the study: a generator started where the optimal
    discriminator rejects its samples, E_{p_g} D(G(z)) and the generator's mean along training under
    each cost (the data's mean dashed)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8), constrained_layout=True)
    D = torch.linspace(1e-4, 1 - 1e-4, 2001, dtype=torch.float64)
    a = torch.linspace(-10.0, 6.0, 2001, dtype=torch.float64)
    for cost in COST_NAMES:
        fn = COSTS[cost]
        axes[0].plot(D.numpy(), fn.of_D(D).numpy(), color=COST_COLOURS[cost], lw=2.2,
                     label=COST_LABELS[cost])
        axes[1].plot(a.numpy(), fn.weight(a).numpy(), color=COST_COLOURS[cost], lw=2.2,
                     label=f"{cost}: |f′(a)| = " + {"minimax": "σ(a) = D", "non_saturating":
                                                   "σ(−a) = 1 − D", "maximum_likelihood":
                                                   "eᵃ = D/(1 − D)"}[cost])
    axes[0].set_ylim(-20, 5)
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel("D(G(z))")
    axes[0].set_ylabel("generator cost f")
    axes[0].set_title("(a) the costs against D(G(z)) (Goodfellow 2016, Fig. 16)", fontsize=10)
    axes[1].set_yscale("log")
    axes[1].set_ylim(1e-4, 1e3)
    axes[1].set_xlabel("discriminator logit a = σ⁻¹(D(G(z)))")
    axes[1].set_ylabel("|df/da|: the sample's weight in the gradient")
    axes[1].axvline(0.0, color="0.3", lw=0.8, ls=":")
    axes[1].set_title("(b) slopes in the logit (left: samples the discriminator rejects)",
                      fontsize=10)
    wide = results.wide(["disc.D_fake", "model.mean"])
    for cost, sub in wide.groupby("game.cost"):
        sub = sub.sort_values("step")
        for ax, var in ((axes[2], "disc.D_fake"), (axes[3], "model.mean")):
            ax.plot(sub["step"], sub[var], color=COST_COLOURS[cost], lw=2.2, label=COST_LABELS[cost])
    axes[2].set_yscale("log")
    axes[2].set_xlabel("generator step")
    axes[2].set_ylabel("mean of D(G(z)) over p_g  (optimal D)")
    axes[2].set_title("(c) training from a rejected start: D(G(z))", fontsize=10)
    mu_d = float(results.runs["game.data_mean"].iloc[0])
    axes[3].axhline(mu_d, color="0.3", lw=1.0, ls="--", label="data mean")
    axes[3].set_xlabel("generator step")
    axes[3].set_ylabel("generator mean μ")
    axes[3].set_title("(d) the generator's mean: minimax saturates", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("The generator costs of Goodfellow (2014) as functions of D(G(z)) and of the logit",
                 fontsize=12)
    return save(fig, path)
