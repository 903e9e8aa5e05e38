"""How often each outcome happens against a swept parameter, over seeds, with Wilson intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..diagnose import LABELS
from ..results import Results
from .base import FIGURES, pyplot
from .convergence_map import COLOURS
from .phase_plane import hue_column


def swept_column(table, by: list[str]) -> str:
    """The parameter on the x axis: the learning rate when it varies, else the numeric
    configuration column of ``by`` with the most distinct values, else ``rule_label``."""
    lr = hue_column(table)
    if lr in by and table[lr].nunique() > 1:
        return lr
    numeric = [c for c in by if np.issubdtype(table[c].dtype, np.number) and table[c].nunique() > 1]
    return max(numeric, key=lambda c: table[c].nunique()) if numeric else "rule_label"


@FIGURES.register("outcome_frequency")
def outcome_frequency(results: Results, path: str | Path) -> Path:
    """One panel per configuration but the swept parameter (:func:`swept_column`); in each, the
    fraction of seeds ending with each dynamics label against the swept parameter, with its Wilson
    95 % interval as error bars (:meth:`Results.aggregate`). Labels no run of the study reached are
    left out, and so are configurations whose every run failed; a point is placed at the
    parameter's value (log scale when all are positive and they span more than a factor 10)."""
    plt = pyplot()
    table = results.aggregate()
    by = list(table.columns[:list(table.columns).index("runs")])
    x = swept_column(table, by)
    panels = [c for c in by if c != x and table[c].nunique(dropna=False) > 1
              and not c.startswith(("rule.", "game.", "regularizer."))
              and c not in ("rule", "game", "regularizer")] or []
    done = table[table["runs"] > 0]   # a configuration whose every run failed has no outcome
    groups = list(done.groupby(panels, sort=False, dropna=False)) if panels else [((), done)]
    labels = [lab for lab in LABELS if (table[lab] > 0).any()]
    numeric = np.issubdtype(table[x].dtype, np.number)
    ncol = min(len(groups), 3)
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, constrained_layout=True, sharey=True,
                             figsize=(3.6 * ncol, 2.7 * nrow + 0.5))
    for ax, (key, sub) in zip(axes.flat, groups):
        xs = sub[x].to_numpy() if numeric else np.arange(len(sub))
        order = np.argsort(xs, kind="stable")
        shift = (np.arange(len(labels)) - (len(labels) - 1) / 2) * 0.015
        log = numeric and (xs > 0).all() and xs.max() > 10 * xs.min()
        for lab, dx in zip(labels, shift):
            p, lo, hi = (sub[c].to_numpy()[order] for c in (lab, f"{lab}_lo", f"{lab}_hi"))
            if log:   # labels side by side, a little apart, so their intervals do not hide
                xv = xs[order] * (xs.max() / xs.min()) ** dx
            else:
                xv = xs[order] + dx * (np.ptp(xs) if numeric else 4)
            err = np.clip([p - lo, hi - p], 0, None)
            ax.errorbar(xv, p, yerr=err, color=COLOURS[lab], marker="o", ms=4,
                        capsize=2.5, lw=1.2, label=lab)
        if log:   # ticks at the swept values: the minor ticks' labels of a short decade collide
            ax.set_xscale("log")
            ax.set_xticks(np.unique(xs), [f"{v:g}" for v in np.unique(xs)])
            ax.minorticks_off()
        if not numeric:
            ax.set_xticks(xs, sub[x].astype(str), rotation=30, ha="right", fontsize=7)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{c.split('.')[-1]}={k}" if c.startswith("optimizer")
                               else str(k) for c, k in zip(panels, key)) or results.study["name"],
                     fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"fraction of runs (n = {int(table['runs'].median())})", fontsize=8)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    fig.suptitle(f"{results.study['name']}: outcome frequency over seeds,"
                 + ("\n" if ncol == 1 else " ") + "Wilson 95% intervals", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
