"""The figure registry: a figure is a function ``(results, path) -> path`` that draws a PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import unknown

Figure = Callable[..., Path]


class FigureRegistry:
    """Names -> figure functions; a study lists the ones it wants under ``figures:``."""

    def __init__(self) -> None:
        self._fns: dict[str, Figure] = {}

    def register(self, name: str) -> Callable[[Figure], Figure]:
        def deco(fn: Figure) -> Figure:
            self._fns[name] = fn
            return fn

        return deco

    def get(self, name: object, key: str = "figures") -> Figure:
        if not isinstance(name, str) or name not in self._fns:
            raise unknown(key, f"figure {name!r}", name, self.names())
        return self._fns[name]

    def names(self) -> list[str]:
        return sorted(self._fns)


FIGURES = FigureRegistry()


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(nrows: int, ncols: int, panel: tuple[float, float] = (3.2, 3.0), legend: float = 0.0,
               title: float = 0.5):
    """A figure of ``nrows`` × ``ncols`` panels of ``panel`` inches (width, height) each, room for
    a three-line title (fontsize 8) above each panel and axis labels beside it, ``legend`` inches
    on the right (for ``fig.legend(loc="center right")``) and ``title`` inches on top for a
    suptitle: a fixed layout, computed once (constrained layout measured every text twice, 0.5 s
    for a 3 × 3 figure). Returns (fig, axes [nrows, ncols])."""
    plt = pyplot()
    left, bottom, gap_w, gap_h = 0.65, 0.5, 0.7, 0.95  # inches: tick labels, axis labels, titles
    W = ncols * panel[0] + legend + 0.15
    H = nrows * panel[1] + title
    fig, axes = plt.subplots(nrows, ncols, figsize=(W, H), squeeze=False)
    ax_w, ax_h = (W - left - legend - 0.15 - (ncols - 1) * gap_w) / ncols, \
        (H - title - bottom - (nrows - 1) * gap_h - 0.45) / nrows
    fig.subplots_adjust(left=left / W, right=1 - (legend + 0.15) / W, bottom=bottom / H,
                        top=1 - (title + 0.45) / H, wspace=gap_w / ax_w, hspace=gap_h / ax_h)
    return fig, axes


# --- helpers shared by figures --------------------------------------------------------------------

def image_grid(images: np.ndarray, columns: int, gap: float = -1.0) -> np.ndarray:
    """Images [n, h, w] tiled into one [rows·(h+1) − 1, columns·(w+1) − 1] picture (1-pixel gaps
    at ``gap``, by default the background value −1)."""
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), gap)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = im
    return out


def as_images(x: np.ndarray) -> np.ndarray | None:
    """Samples [n, …] as grey images [n, h, w]: [n, 1, h, w], [n, h, w], or [n, h·h] (square); None
    for anything else (not images)."""
    x = x.reshape(len(x), -1) if x.ndim == 2 else x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 3:
        return x
    side = math.isqrt(x.shape[1])
    return x.reshape(len(x), side, side) if x.ndim == 2 and side * side == x.shape[1] else None


def config_value(value: Any) -> Any:
    """A game parameter as the runs table stores it: a mapping as JSON text, else itself."""
    return json.loads(value) if isinstance(value, str) and value.startswith("{") else value


def _short(value: Any) -> str:
    """A configuration value in a label: 1.0 → 1, 0.5 → 0.5, text as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, short columns naming its configuration, for the rows of a figure or a table: of
    the configuration columns but the seed and the initial point
    (:func:`gamedyn.aggregate.default_by`), the game's parameters that vary between the runs
    (``loss``), the game when several are, the rule (:func:`gamedyn.tables.display_labels`), the
    regularizer where any run has one, with its parameters that vary (``r1 gamma=0``), and any
    other configuration column that varies (``optimizer.lr``). Runs with equal rows are seeds of
    one configuration."""
    from ..aggregate import default_by
    from ..tables import display_labels

    by = default_by(runs)
    vary = [c for c in by if runs[c].astype(str).nunique() > 1]
    out = {c.removeprefix("game."): runs[c].map(_short) for c in vary if c.startswith("game.")}
    if "game" in vary:
        out["game"] = runs["game"].astype(str)
    out["rule"] = display_labels(runs)
    reg_params = [c for c in vary if c.startswith("regularizer.")]
    if "regularizer" in runs and (reg_params or (runs["regularizer"] != "none").any()):
        label = runs["regularizer"].astype(str)
        for c in reg_params:
            label = label + f" {c.removeprefix('regularizer.')}=" + runs[c].map(_short)
        out["regularizer"] = label
    done = {"game", "rule", "regularizer", "game_label", "rule_label", "regularizer_label"}
    for c in vary:
        if c not in done and not c.startswith(("game.", "rule.", "regularizer.")):
            out[c] = runs[c].map(_short)
    return pd.DataFrame(out, index=runs.index)
