"""Claim 1 of Goodfellow (2014, arXiv 1412.6515, §2): self-contrastive estimation is maximum likelihood."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from ._paper import band, save
from .base import FIGURES, pyplot

_VARS = ["grad.ratio_mle", "grad.cos_mle", "grad.norm_mle", "fit.kl", "model.mean", "model.std",
         "model.log_norm_error"]


def _name(row) -> str:
    unnorm = ", unnormalised" if row.get("game.model") == "unnormalised" else ""
    if row["game"] == "nce":
        return f"NCE, noise N(0, {row['game.noise_std']:g}²){unnorm}"
    return f"{row['game'].upper()}{unnorm}"


@FIGURES.register("paper_sce")
def paper_sce(results: Results, path: str | Path) -> Path:
    """Top: the expected gradient of each criterion against the MLE gradient along the exact
    (quadrature) training paths, plotted against the distance to the data KL(p_d ‖ p_m) — SCE's
    ratio is 0.5 and its cosine 1 everywhere, NCE's are not; and the log-normaliser error of the
    unnormalised model (at the largest η), which NCE learns and SCE leaves alone. Bottom: SCE at
    learning rate 2η against MLE at η (the smallest η of the study): exact paths (lines) and
    minibatch runs (mean and min–max band over seeds)."""
    plt = pyplot()
    w = results.wide(_VARS)
    w["criterion"] = w.apply(_name, axis=1)
    lrs = sorted(w["optimizer.lr"].unique())
    eta = lrs[0]
    exact = w[w["game.gradient"] == "exact"]
    names = list(dict.fromkeys(exact.sort_values("game")["criterion"]))
    palette = dict(zip(names, plt.get_cmap("tab10").colors))
    styles = {n: ("--" if "unnormalised" in n else "-") for n in names}

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6), constrained_layout=True)
    for ax, var, title in ((axes[0, 0], "grad.ratio_mle", "‖g‖ / ‖g_MLE‖"),
                           (axes[0, 1], "grad.cos_mle", "cos(g, g_MLE)")):
        for name in names:
            sub = exact[(exact["criterion"] == name) & (exact["seed"] == exact["seed"].min())
                        & (exact["grad.norm_mle"] > 1e-6) & (exact["fit.kl"] > 1e-8)]
            sub = sub.sort_values("fit.kl")
            unnorm = "unnormalised" in name
            ax.plot(sub["fit.kl"], sub[var], styles[name], color=palette[name],
                    lw=1.2 if unnorm else 2.6, marker="x" if unnorm else "o", ms=3, label=name)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("KL(p_d ‖ p_m) along the training path (→ data)")
        ax.set_title(f"expected gradient vs MLE: {title}")
        ax.grid(alpha=0.3)
    axes[0, 0].axhline(0.5, color="0.3", lw=0.8, ls=":")
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[0, 1].set_ylim(min(-0.05, axes[0, 1].get_ylim()[0]), 1.05)

    ax = axes[0, 2]
    un = exact[(exact["game.model"] == "unnormalised") & (exact["seed"] == exact["seed"].min())
               & (exact["optimizer.lr"] == lrs[-1])]
    for name, sub in un.groupby("criterion"):
        ax.plot(sub["step"], sub["model.log_norm_error"], color=palette[name], lw=1.8,
                ls=styles[name], label=name)
    ax.axhline(0.0, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("log Z = c − c*(σ)")
    ax.set_title(f"unnormalised model: log-normaliser error (η = {lrs[-1]:g})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    pairs = [("MLE", eta, "#2ca02c", f"MLE, η = {eta:g}"),
             ("SCE", 2 * eta, "#17becf", f"SCE, 2η = {2 * eta:g}")]
    for ax, var, ylabel, logy in ((axes[1, 0], "model.mean", "model mean μ", False),
                                  (axes[1, 1], "model.std", "model std σ", False),
                                  (axes[1, 2], "fit.kl", "KL(p_d ‖ p_m)", True)):
        for name, lr, colour, label in pairs:
            sel = (w["criterion"] == name) & np.isclose(w["optimizer.lr"], lr)
            mb = w[sel & (w["game.gradient"] == "minibatch")]
            ex = w[sel & (w["game.gradient"] == "exact") & (w["seed"] == w["seed"].min())]
            n_seeds = mb["seed"].nunique()
            band(ax, mb, "step", var, colour, f"{label}: minibatch, mean ± range of {n_seeds} seeds",
                 lw=1.4)
            ls = "--" if name == "SCE" else "-"
            ax.plot(ex["step"], ex[var], color="black" if name == "MLE" else colour, lw=1.2, ls=ls,
                    label=f"{label}: exact")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.set_title(f"SCE at 2η tracks MLE at η: {ylabel}")
    axes[1, 0].legend(fontsize=8)
    fig.suptitle("Self-contrastive estimation = ½ × maximum likelihood (Goodfellow 2014, §2); "
                 f"{results.study['name']}", fontsize=12)
    return save(fig, path)
