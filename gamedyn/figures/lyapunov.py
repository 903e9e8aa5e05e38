"""Lyapunov evidence beside the labels: each run's leading exponent against its learning rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from .base import FIGURES, pyplot
from .convergence_map import COLOURS
from .phase_plane import hue_column


@FIGURES.register("lyapunov")
def lyapunov_figure(results: Results, path: str | Path) -> Path:
    """One panel per game and rule: each run's leading finite-time Lyapunov exponent λ₁ per step
    (``lyapunov_1``, :mod:`gamedyn.lyapunov`; bars: ± 2 standard errors) against its learning rate,
    coloured by its dynamics label, over the band |λ₁| < τ that the labels' scale calls neutral
    (τ = log ``growth_factor`` / W, W the late window: ``late_fraction`` of the steps;
    :func:`gamedyn.diagnose.lyapunov_columns`). A run whose label and exponent disagree
    (``lyapunov_agrees`` false) is drawn hollow. Where the game is ``bilinear`` with the identity
    and the rule simultaneous SGD without momentum, the closed form λ₁ = ½ log(1 + η²) is drawn
    too (the step map is I − ηH with |μ| = √(1 + η²))."""
    from ..diagnose import validate_thresholds

    plt = pyplot()
    runs = results.runs
    if "lyapunov_1" not in runs or runs["lyapunov_1"].isna().all():
        raise ValueError("the lyapunov figure needs Lyapunov exponents: a study with "
                         "lyapunov: {every: k, steps: H} (or the default, for small games)")
    th = validate_thresholds(results.study.get("diagnose", {}))
    lr = hue_column(runs)
    groups = list(runs.groupby(["game_label", "rule_label"], sort=False))
    ncol = min(len(groups), 3)
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, constrained_layout=True,
                             figsize=(3.6 * ncol, 2.6 * nrow + 0.6))
    seen: set[str] = set()
    for ax, ((game, rule), sub) in zip(axes.flat, groups):
        x = sub[lr].to_numpy(float) if lr in sub else np.zeros(len(sub))
        lam, se = sub["lyapunov_1"].to_numpy(float), sub["lyapunov_1_se"].to_numpy(float)
        window = th["late_fraction"] * sub["steps"].to_numpy(float)
        tau = np.log(th["growth_factor"]) / np.median(window)
        ax.axhspan(-tau, tau, color="0.92", lw=0)
        ax.axhline(0, color="0.6", lw=0.6)
        rng = np.random.default_rng(0)
        jitter = x * (1 + 0.04 * rng.uniform(-1, 1, len(x)))   # seeds side by side
        agrees = sub["lyapunov_agrees"].to_numpy(dtype=object) if "lyapunov_agrees" in sub \
            else np.full(len(sub), True, dtype=object)
        for label, colour in COLOURS.items():
            m = (sub["dynamics"].to_numpy() == label) & np.isfinite(lam)
            if not m.any():
                continue
            seen.add(label)
            ax.errorbar(jitter[m], lam[m], yerr=2 * np.nan_to_num(se[m]), fmt="none",
                        ecolor=colour, elinewidth=0.8, alpha=0.7)
            hollow = np.array([a is False for a in agrees[m]])
            for face, sel in ((colour, ~hollow), ("white", hollow)):
                if sel.any():
                    ax.scatter(jitter[m][sel], lam[m][sel], s=14, facecolor=face,
                               edgecolor=colour, lw=0.9, zorder=3)
        if sub["game"].iloc[0] == "bilinear" and sub["rule"].iloc[0] == "simultaneous" \
                and (sub.get("game.A", "identity") == "identity").all() \
                and (sub.get("optimizer.momentum", 0.0) == 0.0).all() and lr in sub:
            eta = np.geomspace(x.min(), x.max(), 50)
            ax.plot(eta, 0.5 * np.log1p(eta ** 2), color="black", lw=1, ls="--",
                    label="½ log(1 + η²)")
            ax.legend(fontsize=7, frameon=False, loc="upper left")
        if (x > 0).all() and x.max() > 3 * x.min():
            ax.set_xscale("log")
            ax.minorticks_off()
        values = np.unique(x)
        if len(values) <= 8:
            ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_title(f"{game} · {rule}", fontsize=8)
        ax.set_xlabel(lr if lr in sub else "", fontsize=8)
        ax.set_ylabel("λ₁ per step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], marker="o", ls="", color=COLOURS[k], label=k) for k in COLOURS
               if k in seen]
    handles.append(plt.Line2D([], [], marker="o", ls="", mfc="white", mec="0.3",
                              label="label and λ₁ disagree"))
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.92", label="neutral band |λ₁| < τ"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7,
               frameon=False)
    fig.suptitle(f"{results.study['name']}: leading Lyapunov exponent of each run's end, by label",
                 fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
