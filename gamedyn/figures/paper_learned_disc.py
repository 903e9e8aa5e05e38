"""Claim 2, continued (Goodfellow 2014, arXiv 1412.6515, §3): against a learned, imperfect
discriminator no generator cost gives the MLE gradient, and the fewer discriminator steps, the
further it drifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..costs import COST_NAMES
from ..results import Results
from ._paper import COST_COLOURS, COST_LABELS, save
from .base import FIGURES, pyplot

_VARS = ["grad.cos_mle", "grad.proj_mle", "grad_opt.cos_mle", "grad_opt.proj_mle", "grad.norm_mle",
         "disc.value_gap"]


@FIGURES.register("paper_learned_disc")
def paper_learned_disc(results: Results, path: str | Path) -> Path:
    """Rows: the cosine and the projection ⟨g, g_MLE⟩/‖g_MLE‖² of the generator's expected gradient
    against the MLE gradient, along training, one column per cost, one colour per number k of
    discriminator steps per generator step; thin dashed: the same cost against the optimal
    discriminator at the same generator. Last column: per cost, the median over training of
    |cos − cos_opt| and |proj − proj_opt| (the drift caused by the discriminator's imperfection)
    against k; and the discriminator's value gap V(D*) − V(D). Exact (quadrature)."""
    plt = pyplot()
    w = results.wide(_VARS)
    w = w[(w["step"] > 0) & (w["grad.norm_mle"] > 1e-6)].copy()
    w["k"] = w["rule.disc_steps"].astype(int)
    ks = sorted(w["k"].unique())
    colours = dict(zip(ks, plt.get_cmap("viridis")(np.linspace(0.05, 0.85, len(ks)))))
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.2), constrained_layout=True)
    for j, cost in enumerate(COST_NAMES):
        for i, (var, ref, title) in enumerate((("grad.cos_mle", "grad_opt.cos_mle", "cos(g, g_MLE)"),
                                               ("grad.proj_mle", "grad_opt.proj_mle",
                                                "⟨g, g_MLE⟩ / ‖g_MLE‖²"))):
            ax = axes[i, j]
            for k in ks:
                sub = w[(w["game.cost"] == cost) & (w["k"] == k)].sort_values("step")
                ax.plot(sub["step"], sub[var], color=colours[k], lw=1.7, label=f"k = {k}")
                ax.plot(sub["step"], sub[ref], color=colours[k], lw=0.9, ls="--")
            ax.axhline(1.0, color="0.3", lw=0.8, ls=":")
            ax.set_title(f"{COST_LABELS[cost]}: {title}", fontsize=10)
            ax.set_xlabel("generator step")
            ax.grid(alpha=0.3)
            if var == "grad.proj_mle":
                lo, hi = np.nanpercentile(w[var], [1, 99])
                ax.set_ylim(min(lo, -0.1), max(hi, 1.2))
    axes[0, 0].legend(fontsize=8, title="disc steps per gen step\n(dashed: optimal D)",
                      title_fontsize=8)
    ax = axes[0, 3]
    for cost in COST_NAMES:
        sub = w[w["game.cost"] == cost]
        drift = (sub["grad.cos_mle"] - sub["grad_opt.cos_mle"]).abs().groupby(sub["k"]).median()
        drift_p = (sub["grad.proj_mle"] - sub["grad_opt.proj_mle"]).abs().groupby(sub["k"]).median()
        ax.plot(drift.index, drift.values, "o-", color=COST_COLOURS[cost], label=f"{cost}: |Δcos|")
        ax.plot(drift_p.index, drift_p.values, "s--", color=COST_COLOURS[cost], label=f"{cost}: |Δproj|")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("discriminator steps per generator step k")
    ax.set_title("drift from the optimal-D gradient\n(median over training)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1, 3]
    for cost in COST_NAMES:
        sub = w[w["game.cost"] == cost]
        gap = sub["disc.value_gap"].groupby(sub["k"]).median()
        ax.plot(gap.index, gap.values, "o-", color=COST_COLOURS[cost], label=cost)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("discriminator steps per generator step k")
    ax.set_title("discriminator's value gap V(D*) − V(D)\n(median over training)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("Generator gradients against a learned discriminator (logistic regression on "
                 "(1, x, x²)) trained k steps per generator step", fontsize=12)
    return save(fig, path)
