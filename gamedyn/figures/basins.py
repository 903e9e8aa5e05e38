"""Basins of attraction: each start coloured by the attractor its run ended on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import Results
from .base import FIGURES, pyplot

#: Colours of the attractors that are not equilibria or cycles.
OTHER = {"diverged": "0.15", "drifting": "0.8", "none": "white"}


def start_columns(runs: pd.DataFrame) -> list[str]:
    """The two (or one) numeric ``init.*`` columns with the most distinct values: the coordinates a
    grid or a Sobol sample of starts spans."""
    cols = [c for c in runs.columns if c.startswith("init.") and c not in ("init.scale",)
            and pd.api.types.is_numeric_dtype(runs[c]) and runs[c].nunique() > 1]
    top = sorted(cols, key=lambda c: -runs[c].nunique())[:2]
    return [c for c in cols if c in top]


def palette(ids: list[str]) -> dict[str, object]:
    """A colour per attractor id: equilibria from tab10 (then tab20), cycles from Set2 (hatched
    in the legend by their kind's name), spurious rest points from Dark2, diverged near black,
    drifting light grey."""
    from matplotlib import colormaps

    eqs = [a for a in ids if a.startswith("eq:")]
    eq_map = colormaps["tab10" if len(eqs) <= 10 else "tab20"]
    out: dict[str, object] = {a: eq_map(i % eq_map.N) for i, a in enumerate(eqs)}
    for prefix, name in (("cycle:", "Set2"), ("fixed:", "Dark2")):
        out.update({a: colormaps[name](i % 8)
                    for i, a in enumerate(a for a in ids if a.startswith(prefix))})
    out.update({a: OTHER.get(a, "white") for a in ids if a not in out})
    return out


@FIGURES.register("basins")
def basins(results: Results, path: str | Path) -> Path:
    """One panel per configuration (the configuration columns that vary, seeds and starts aside):
    every start of the study's grid (an image) or Sobol sample (dots), coloured by the attractor its
    run ended on (:mod:`gamedyn.basins`), equilibria found marked by a star in their colour (a
    spurious rest point by a cross) where the panel's axes are their coordinates. The legend names
    each attractor with its point (for an equilibrium) or radius range (for a cycle); each panel's
    title gives the basin fractions."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..aggregate import default_by
    from ..basins import fractions

    plt = pyplot()
    runs = results.runs
    xy = start_columns(runs)
    if not xy or "attractor" not in runs:
        raise ValueError("the basins figure needs starts that vary over init.* coordinates and an "
                         "attractor column (a study with init: {grid: ...} or {sobol: ...})")
    by = default_by(runs)
    table = fractions(runs, by)   # its attractor columns: every id, in order
    labelled = tuple(f"{c}." for c in ("game", "rule", "regularizer") if f"{c}_label" in by)
    varying = [c for c in by if table[c].nunique(dropna=False) > 1
               and not (c in ("game", "rule", "regularizer") and f"{c}_label" in by)
               and not c.startswith(labelled)]   # a component's label names its parameters
    ids = [c for c in table.columns[list(table.columns).index("runs") + 1:]]
    colours = palette(ids)
    code = {a: i for i, a in enumerate(ids)}
    cmap = ListedColormap([colours[a] for a in ids])
    groups = list(runs.groupby(varying, sort=False, dropna=False)) if varying else [((), runs)]
    ncol = min(len(groups), 4)
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False, constrained_layout=True,
                             figsize=(3.3 * ncol + 1.8, 3.2 * nrow + 0.4))
    names = _coordinate_names(results)
    where = [c.removeprefix("init.") for c in xy]
    for ax, (key, sub) in zip(axes.flat, groups):
        x = sub[xy[0]].to_numpy(float)
        y = sub[xy[-1]].to_numpy(float) if len(xy) > 1 else np.zeros(len(sub))
        c = np.array([code.get(a if isinstance(a, str) else "none", 0) for a in sub["attractor"]])
        ux, uy = np.unique(x), np.unique(y)
        if len(ux) * len(uy) == len(sub) and len(sub) > 1:   # a full grid: an image
            img = np.full((len(uy), len(ux)), np.nan)
            img[np.searchsorted(uy, y), np.searchsorted(ux, x)] = c
            dx = (ux[-1] - ux[0]) / max(len(ux) - 1, 1) / 2
            dy = (uy[-1] - uy[0]) / max(len(uy) - 1, 1) / 2 if len(uy) > 1 else 0.5
            ax.imshow(img, origin="lower", cmap=cmap, vmin=-0.5, vmax=len(ids) - 0.5,
                      extent=(ux[0] - dx, ux[-1] + dx, uy[0] - dy, uy[-1] + dy),
                      interpolation="nearest", aspect="auto")
        else:
            ax.scatter(x, y, c=c, cmap=cmap, vmin=-0.5, vmax=len(ids) - 0.5, s=6, lw=0)
        for a in sorted(set(sub["attractor"].dropna())):
            if not a.startswith(("eq:", "fixed:")) or names is None:
                continue
            pts = sub.loc[sub["attractor"] == a, "attractor_point"].dropna()
            p = np.mean([json.loads(t) for t in pts], 0)
            if all(w in names for w in where):
                px = p[names.index(where[0])]
                py = p[names.index(where[-1])] if len(where) > 1 else 0.0
                ax.plot(px, py, "*" if a.startswith("eq:") else "X", ms=11, color=colours[a],
                        mec="black", mew=0.7, zorder=5)
        key = key if isinstance(key, tuple) else (key,)
        share = sub["attractor"].fillna("none").value_counts(normalize=True)
        top = sorted(((f, a) for a, f in share.items()), key=lambda t: (-t[0], t[1]))[:4]
        title = ", ".join(str(k) if cn.endswith("_label") else f"{cn.split('.')[-1]}={k}"
                          for cn, k in zip(varying, key))
        ax.set_title((title + "\n" if title else "")
                     + " ".join(f"{a} {f:.0%}" for f, a in top), fontsize=7.5)
        ax.set_xlabel(xy[0].removeprefix("init."), fontsize=8)
        ax.set_ylabel(xy[-1].removeprefix("init.") if len(xy) > 1 else "", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    handles = [Patch(color=colours[a], label=_legend(a, runs)) for a in ids]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, title="attractor",
               title_fontsize=8, frameon=False)
    fig.suptitle(f"{results.study['name']}: basins of attraction ({len(runs)} starts)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _coordinate_names(results: Results) -> list[str] | None:
    """The recorded coordinates' names, in the order of ``attractor_point`` (the recorder's first
    variables), or None when the study's runs record no end point."""
    pts = results.runs["attractor_point"].dropna() if "attractor_point" in results.runs else []
    if not len(pts):
        return None
    first = results.trajectories_for(results.runs["run_id"].iloc[:1], steps=[0])
    variables = list(first["variable"].astype(str))
    return variables[:len(json.loads(pts.iloc[0]))]


def _legend(a: str, runs: pd.DataFrame) -> str:
    """An attractor's legend entry: its id, kind and where it is."""
    sel = runs["attractor"] == a
    if a.startswith(("eq:", "fixed:")):
        p = np.round(np.mean([json.loads(t) for t in runs.loc[sel, "attractor_point"].dropna()],
                             0), 9) + 0.0
        kind = "converged" if a.startswith("eq:") else "spurious"
        return f"{a} {kind} ({', '.join(f'{v:.2g}' for v in p)})"
    if a.startswith("cycle:"):
        # the span over its runs: one cycle's range, or a family's (a centre's nested orbits, which
        # the clustering chains into one id)
        lo, hi = runs.loc[sel, "attractor_radius_lo"].min(), runs.loc[sel, "attractor_radius_hi"].max()
        return f"{a} cycling (radius {lo:.2g}–{hi:.2g})"
    return a
