"""Where each rule converges: outcome by rule × learning rate, one panel per game setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from .base import FIGURES, pyplot
from .phase_plane import hue_column

COLOURS = {"converged": "#4c9f70", "cycling": "#e0b84c", "drifting": "#b9b9b9", "diverged": "#c8553d",
           "spurious": "#8a6fb3"}
FACETS = ("game_label", "regularizer_label", "optimizer.momentum", "optimizer.gen.momentum")


@FIGURES.register("convergence_map")
def convergence_map(results: Results, path: str | Path) -> Path:
    """One panel per game setting (game, regularizer, momentum — whichever vary); in each, rows are
    rules, columns learning rates; a cell's colour is the most frequent ``dynamics`` label of its
    runs (seeds), its text the median observed factor per step exp(growth_rate) (< 1 contracts),
    to 4 decimals."""
    plt = pyplot()
    runs = results.runs.copy()
    lr = hue_column(runs) or "optimizer.lr"
    facets = [c for c in FACETS if c in runs and runs[c].nunique() > 1] or ["game_label"]
    runs["observed"] = np.exp(runs["growth_rate"])
    rules = list(dict.fromkeys(runs["rule_label"]))
    lrs = sorted(runs[lr].unique())
    groups = list(runs.groupby(facets, sort=False))
    ncol = min(len(groups), 3)
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, constrained_layout=True,
                             figsize=(1.0 + 0.9 * len(lrs) * ncol, 0.8 + 0.42 * len(rules) * nrow))
    for ax, (key, sub) in zip(axes.flat, groups):
        for i, rule in enumerate(rules):
            for j, value in enumerate(lrs):
                cell = sub[(sub["rule_label"] == rule) & (sub[lr] == value)]
                if cell.empty:
                    continue
                label = cell["dynamics"].mode().iloc[0]
                ax.add_patch(plt.Rectangle((j, i), 1, 1, color=COLOURS[label], ec="white", lw=1.5))
                ax.text(j + 0.5, i + 0.5, f"{cell['observed'].median():.4f}", ha="center",
                        va="center", fontsize=7)
        ax.set_xlim(0, len(lrs))
        ax.set_ylim(len(rules), 0)
        ax.set_xticks(np.arange(len(lrs)) + 0.5, [f"{v:g}" for v in lrs], fontsize=8)
        ax.set_yticks(np.arange(len(rules)) + 0.5, rules, fontsize=8)
        ax.set_xlabel(lr, fontsize=8)
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{c.split('.')[-1]}={k}" if c.startswith("optimizer") else str(k)
                               for c, k in zip(facets, key)), fontsize=9)
        ax.tick_params(length=0)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, label=k) for k, c in COLOURS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(f"{results.study['name']}: outcome and observed factor per step", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
