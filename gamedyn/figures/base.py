"""The figure registry: a figure is a function ``(results, path) -> path`` that draws a PNG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import StudyError

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
            raise StudyError(key, f"unknown figure {name!r}; accepted: {', '.join(self.names())}")
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
