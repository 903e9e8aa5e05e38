"""Claim 2 of Goodfellow (2014, arXiv 1412.6515, §3): only the maximum-likelihood cost gives the MLE
gradient, and only against the optimal discriminator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..costs import COST_NAMES
from ..results import Results
from ._paper import COST_COLOURS, COST_LABELS, save
from .base import FIGURES, pyplot

_VARS = ["grad.cos_mle", "grad.ratio_mle", "grad.proj_mle", "grad.norm_mle", "model.mean", "model.std"]


@FIGURES.register("paper_generator_costs")
def paper_generator_costs(results: Results, path: str | Path) -> Path:
    """The expected generator gradient of each cost against the optimal discriminator, compared with
    the MLE gradient ∇ KL(p_d ‖ p_g) in (μ, log σ), at step 0 of every run: cosine, norm ratio and
    projection against the generator's offset from the data in data standard deviations, one line
    style per width ratio σ_g/σ_d. Exact (quadrature)."""
    plt = pyplot()
    w = results.wide(_VARS)
    w = w[(w["step"] == 0) & (w["grad.norm_mle"] > 1e-6)].copy()
    w["offset"] = (w["model.mean"] - w["game.data_mean"]) / w["game.data_std"]
    w["width"] = w["model.std"] / w["game.data_std"]
    widths = sorted(w["width"].round(6).unique())
    styles = dict(zip(widths, ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    panels = (("grad.cos_mle", "cos(g, g_MLE)", False),
              ("grad.ratio_mle", "‖g‖ / ‖g_MLE‖", True),
              ("grad.proj_mle", "⟨g, g_MLE⟩ / ‖g_MLE‖²", False))
    for ax, (var, title, logy) in zip(axes, panels):
        for cost in COST_NAMES:
            for width in widths:
                sub = w[(w["game.cost"] == cost) & np.isclose(w["width"], width)].sort_values("offset")
                ax.plot(sub["offset"], sub[var], styles[width], color=COST_COLOURS[cost], lw=1.7,
                        marker="o", ms=2.5)
        ax.axhline(1.0, color="0.3", lw=0.8, ls=":")
        ax.set_xlabel("generator offset (μ_g − μ_d) / σ_d")
        ax.set_title(title)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=COST_COLOURS[c], lw=2, label=COST_LABELS[c]) for c in COST_NAMES]
    handles += [plt.Line2D([], [], color="0.3", ls=styles[wd], label=f"σ_g / σ_d = {wd:g}")
                for wd in widths]
    fig.legend(handles=handles, loc="outside right center", fontsize=9)
    fig.suptitle("Generator costs against the optimal discriminator vs maximum likelihood "
                 "(expected gradients in (μ, log σ), exact): only −exp(a) matches", fontsize=12)
    return save(fig, path)
