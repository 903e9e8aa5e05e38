"""Helpers shared by the figures of the paper's claims (``paper_*``; not a figure itself)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import pyplot

#: One colour per generator cost / estimation strategy, the same in every paper figure.
COST_COLOURS = {"minimax": "#d62728", "non_saturating": "#1f77b4", "maximum_likelihood": "#2ca02c"}
COST_LABELS = {"minimax": "minimax  log(1−D)", "non_saturating": "non-saturating  −log D",
               "maximum_likelihood": "maximum likelihood  −D/(1−D)"}
STRATEGY_COLOURS = {"mle": "#2ca02c", "sce": "#17becf", "nce": "#9467bd",
                    "gan · minimax": "#d62728", "gan · non-saturating": "#1f77b4",
                    "gan · maximum likelihood": "#bcbd22", "gan · non-saturating, learned D": "#ff7f0e"}


def strategy(row: pd.Series) -> str:
    """A short name for a run's estimation strategy (game, cost, discriminator)."""
    if row["game"] != "gan1d":
        return str(row["game"])
    cost = str(row["game.cost"]).replace("_", " ").replace("non saturating", "non-saturating")
    learned = ", learned D" if row.get("game.discriminator") == "learned" else ""
    return f"gan · {cost}{learned}"


def band(ax, frame: pd.DataFrame, x: str, y: str, colour: str, label: str, *, lw: float = 1.6,
         ls: str = "-", alpha: float = 0.2) -> None:
    """Mean of ``y`` over runs at each ``x``, with a band from the minimum to the maximum."""
    g = frame.groupby(x)[y]
    mean, lo, hi = g.mean(), g.min(), g.max()
    ax.plot(mean.index, mean.values, color=colour, lw=lw, ls=ls, label=label)
    if (hi - lo).abs().max() > 0:
        ax.fill_between(mean.index, lo.values, hi.values, color=colour, alpha=alpha, lw=0)


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path
