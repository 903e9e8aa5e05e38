"""Claim 3 of Goodfellow (2014, arXiv 1412.6515, §3): the maximum-likelihood generator cost's
minibatch gradient is carried by a few samples, and its variance explodes away from the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..costs import COST_NAMES
from ..results import Results
from ._paper import COST_COLOURS, COST_LABELS, save
from .base import FIGURES, pyplot

_VARS = ["var.rel", "var.rel_mc", "var.rel_mc_ci95", "var.ess", "var.ess_mc", "var.top1_mc",
         "model.mean", "model.std"]


@FIGURES.register("paper_variance")
def paper_variance(results: Results, path: str | Path) -> Path:
    """Against the generator's offset from the data (in data standard deviations; generator and
    data of equal width): (a) the relative variance tr Cov[g]/‖E g‖² of a one-sample gradient,
    exact (lines) and Monte Carlo with 95% intervals (markers, one per seed); (b) the effective
    sample size fraction of the sample weights |f′(a)|, exact and Monte Carlo; (c) the share of the
    gradient carried by the top 1% of samples, Monte Carlo (mean and range over seeds). Dotted:
    the closed forms for the maximum-likelihood cost with σ_g = σ_d = 1 and offset Δ,
    e^{Δ²}(2 + 4Δ²)/(1 + Δ²) − 1 and e^{−Δ²}."""
    plt = pyplot()
    w = results.wide(_VARS)
    w = w[w["step"] == 0].copy()
    w["offset"] = (w["game.data_mean"] - w["model.mean"]).abs() / w["game.data_std"]
    n_mc = int(results.runs["game.mc_samples"].iloc[0])
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.0), constrained_layout=True)
    seeds = sorted(w["seed"].unique())
    jitter = dict(zip(seeds, np.linspace(-0.04, 0.04, len(seeds))))
    for cost in COST_NAMES:
        c = COST_COLOURS[cost]
        sub = w[w["game.cost"] == cost].sort_values("offset")
        ex = sub[sub["seed"] == seeds[0]]
        axes[0].plot(ex["offset"], ex["var.rel"], color=c, lw=2, label=f"{COST_LABELS[cost]}: exact")
        axes[0].errorbar(sub["offset"] + sub["seed"].map(jitter), sub["var.rel_mc"],
                         yerr=sub["var.rel_mc_ci95"], fmt="o", ms=3, color=c, alpha=0.6, lw=0.8,
                         capsize=1.5)
        axes[1].plot(ex["offset"], ex["var.ess"], color=c, lw=2, label=f"{COST_LABELS[cost]}: exact")
        axes[1].plot(sub["offset"] + sub["seed"].map(jitter), sub["var.ess_mc"], "o", ms=3, color=c,
                     alpha=0.6)
        g = sub.groupby("offset")["var.top1_mc"]
        axes[2].plot(g.mean().index, g.mean().values, "o-", color=c, lw=2, ms=4,
                     label=COST_LABELS[cost])
        axes[2].fill_between(g.mean().index, g.min().values, g.max().values, color=c, alpha=0.2)
    d = np.linspace(0.0, w["offset"].max(), 200)
    axes[0].plot(d, np.exp(d**2) * (2 + 4 * d**2) / (1 + d**2) - 1, ":", color="black", lw=1.2,
                 label="closed form, maximum likelihood")
    axes[1].plot(d, np.exp(-(d**2)), ":", color="black", lw=1.2,
                 label="closed form exp(−Δ²), maximum likelihood")
    axes[0].set_yscale("log")
    axes[0].set_title("(a) relative variance of a one-sample gradient\n"
                      f"exact (lines), Monte Carlo n = {n_mc} ± 95% (markers)", fontsize=10)
    axes[1].set_yscale("log")
    axes[1].set_title("(b) effective sample size fraction of the weights |f′(a)|\n"
                      "exact (lines), Monte Carlo (markers)", fontsize=10)
    axes[2].axhline(0.01, color="0.3", lw=0.8, ls=":")
    axes[2].set_ylim(0, 1)
    axes[2].set_title(f"(c) share of the gradient carried by the top 1% of {n_mc} samples\n"
                      "Monte Carlo, mean and range over seeds", fontsize=10)
    for ax in axes:
        ax.set_xlabel("|μ_g − μ_d| / σ_d  (σ_g = σ_d)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("The minibatch generator gradient against the optimal discriminator: a few samples "
                 "carry the maximum-likelihood cost's gradient", fontsize=12)
    return save(fig, path)
