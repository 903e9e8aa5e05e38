"""Claim 1, continued: a stale copy breaks the SCE = ½ MLE identity (Goodfellow 2014, arXiv 1412.6515)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from ._paper import save
from .base import FIGURES, pyplot

_VARS = ["grad.ratio_mle", "grad.proj_mle", "grad.cos_mle", "grad.norm_mle", "fit.kl", "copy.lag",
         "disc.mu", "disc.log_sigma", "gen.mu"]


@FIGURES.register("paper_sce_stale")
def paper_sce_stale(results: Results, path: str | Path) -> Path:
    """(a) At step 0, copies offset from the model by δ in μ: the expected gradient equals ½ the MLE
    gradient (ratio and projection 0.5, cosine 1) only at δ = 0. (b)–(d) Copies refreshed every k
    model steps (alternating play, generator = copy first, k discriminator = model steps): KL to the
    data against model steps, the path in (μ, σ), and the projection ⟨g, g_MLE⟩/‖g_MLE‖² recorded at
    the end of each round (when the copy is k steps old; records are taken once per round, hence
    the straight segments for large k)."""
    plt = pyplot()
    w = results.wide(_VARS)
    w["k"] = w["rule.disc_steps"].astype(int)
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.6), constrained_layout=True)

    ax = axes[0]
    start = w[(w["step"] == 0) & (w["k"] == w["k"].min())].copy()
    start["delta"] = start["gen.mu"] - start["disc.mu"]
    start = start.sort_values("delta")
    for var, colour, label in (("grad.ratio_mle", "#1f77b4", "‖g‖ / ‖g_MLE‖"),
                               ("grad.proj_mle", "#ff7f0e", "⟨g, g_MLE⟩ / ‖g_MLE‖²"),
                               ("grad.cos_mle", "#2ca02c", "cos(g, g_MLE)")):
        ax.plot(start["delta"], start[var], "o-", color=colour, label=label, lw=1.6, ms=4)
    ax.axhline(0.5, color="0.3", lw=0.8, ls=":")
    ax.axvline(0.0, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("copy offset δ = μ_copy − μ_model (step 0)")
    ax.set_title("(a) the identity holds only for a fresh copy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    first = w[w["step"] == 0]
    fresh_ids = first.loc[np.isclose(first["gen.mu"], first["disc.mu"]), "run_id"]
    fresh = w[w["run_id"].isin(fresh_ids)]
    ks = sorted(fresh["k"].unique())
    horizon = 2 * fresh.loc[fresh["k"] == ks[0], "step"].max()  # twice k = 1's budget
    colours = dict(zip(ks, plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(ks)))))
    for k in ks:
        sub = fresh[fresh["k"] == k].sort_values("step")
        model_steps = sub["step"] * k
        keep = (model_steps <= horizon) & (sub["fit.kl"] > 1e-10)
        label = "k = 1 (SCE)" if k == 1 else f"k = {k}"
        axes[1].plot(model_steps[keep], sub["fit.kl"][keep], color=colours[k], lw=1.8, marker="o",
                     ms=2, label=label)
        axes[2].plot(sub["disc.mu"], np.exp(sub["disc.log_sigma"]), color=colours[k], lw=1.8,
                     marker="o", ms=2, label=label)
        ok = sub["grad.norm_mle"] > 1e-6
        axes[3].plot(model_steps[ok & keep], sub["grad.proj_mle"][ok & keep], color=colours[k],
                     lw=1.5, marker="o", ms=2, label=label)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("model (discriminator) steps")
    axes[1].set_ylabel("KL(p_d ‖ p_m)")
    axes[1].set_title("(b) refresh every k steps: a different path")
    axes[2].set_xlabel("model mean μ")
    axes[2].set_ylabel("model std σ")
    axes[2].plot([fresh["disc.mu"].iloc[0]], [np.exp(fresh["disc.log_sigma"].iloc[0])], "o",
                 color="0.3", ms=5)
    mu_d, sd_d = results.runs["game.data_mean"].iloc[0], results.runs["game.data_std"].iloc[0]
    axes[2].plot([mu_d], [sd_d], "*", color="crimson", ms=14, label="data")
    axes[2].set_title("(c) the paths in (μ, σ)")
    axes[3].axhline(0.5, color="0.3", lw=0.8, ls=":")
    axes[3].set_xlabel("model (discriminator) steps")
    axes[3].set_ylabel("⟨g, g_MLE⟩ / ‖g_MLE‖² at round ends")
    axes[3].set_title("(d) the gradient with a k-step-old copy")
    for ax in axes[1:]:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("SCE with a stale copy (copy refreshed every k model steps): "
                 f"{results.study['name']}", fontsize=12)
    return save(fig, path)
