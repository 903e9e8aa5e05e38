"""Claim 3 of Goodfellow (2014, arXiv 1412.6515, §3) on real data: the spread of each generator
cost's minibatch gradient along training against a learned discriminator (``module_gan`` with
``diagnostics: variance``), beside the fit it reaches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from ._paper import COST_COLOURS, COST_LABELS, band, save
from .base import FIGURES, configurations, pyplot

#: (variable, panel title, log scale) in reading order.
PANELS = (("var.rel", "(a) relative variance of a one-sample gradient\ntr Ĉov[g_i] / ‖ḡ‖²", True),
          ("var.ess", "(b) effective sample size fraction\nof the weights |f′(a)|", True),
          ("var.top1", "(c) share of Σ‖g_i‖ carried by\nthe top 1% of samples", False),
          ("D.fake", "(d) discriminator's mean D on samples", False),
          ("fit.class_kl", "(e) class KL to the data's label frequencies", False),
          ("fit.frechet", "(f) Fréchet distance (classifier features)", True))
_STYLES = ("-", "--", ":", "-.")


@FIGURES.register("cost_variance")
def cost_variance(results: Results, path: str | Path) -> Path:
    """For ``module_gan`` runs recorded with ``diagnostics: variance``, along training: (a) the
    relative variance tr Ĉov[g_i]/‖ḡ‖² of the per-sample generator gradients on the fixed
    evaluation sample (``var.rel``; a minibatch of m divides it by m), (b) the effective sample size
    fraction (Σw)²/(nΣw²) of the samples' weights w = |f′(a)| (``var.ess``), (c) the share of the
    gradient carried by the top 1% of samples (``var.top1``; 0.01 for equal weights), (d) the
    discriminator's mean output on generated samples (D/(1 − D) is the maximum-likelihood cost's
    weight), (e) the class KL and (f) the Fréchet distance on the classifier's features (where
    recorded). One colour per generator cost (``loss``), one line style per other configuration
    (the rule, …); lines are means over seeds, bands their range."""
    plt = pyplot()
    names = [v for v, _, _ in PANELS]
    w = results.wide(names)
    if "var.rel" not in w:
        raise ValueError("cost_variance needs module_gan runs recorded with diagnostics: variance")
    conf = configurations(results.runs).set_index(results.runs["run_id"])
    colour_by = "loss" if "loss" in conf else conf.columns[0]
    rest = [c for c in conf.columns if c != colour_by]
    w = w.assign(_colour=w["run_id"].map(conf[colour_by]),
                 _style=w["run_id"].map(conf[rest].astype(str).agg(" · ".join, axis=1)) if rest else "")
    styles = dict(zip(dict.fromkeys(w["_style"]), _STYLES * 4))
    colours = dict(zip(dict.fromkeys(w["_colour"]), ["#d62728", "#1f77b4", "#2ca02c", "#9467bd",
                                                      "#ff7f0e", "#8c564b"]))
    colours.update({k: COST_COLOURS[k] for k in colours if k in COST_COLOURS})
    panels = [p for p in PANELS if p[0] in w and w[p[0]].notna().any()]
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False,
                             constrained_layout=True)
    for ax, (var, title, logy) in zip(axes.flat, panels):
        for (colour, style), sub in w.groupby(["_colour", "_style"], sort=False):
            sub = sub[np.isfinite(sub[var])]
            band(ax, sub, "step", var, colours[colour], f"{COST_LABELS.get(colour, colour)} {style}",
                 ls=styles[style], lw=1.4, alpha=0.12)
        if var == "var.top1":
            ax.axhline(0.01, color="0.3", lw=0.8, ls=":")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[c], lw=2, label=COST_LABELS.get(c, c)) for c in colours]
    handles += [plt.Line2D([], [], color="0.3", ls=styles[s], label=s) for s in styles if s]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    n = int(results.runs["game.eval_samples"].iloc[0]) if "game.eval_samples" in results.runs else 0
    fig.suptitle(f"{results.study['name']}: the generator's per-sample gradients on {n} fixed "
                 f"evaluation samples against the learned discriminator, along training "
                 f"(mean and range over seeds)", fontsize=10)
    return save(fig, path)
