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
