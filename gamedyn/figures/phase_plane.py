"""The phase-plane figure: each run's (gen, disc) trajectory around the equilibrium (in a game whose
players have their own names, its first and second player's: :mod:`gamedyn.players`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..players import GAN, roles
from ..results import Results
from .base import FIGURES, panel_grid, pyplot


def _phase_vars(variables: list[str]) -> tuple[str, str] | None:
    """The first recorded coordinate of gen and of disc: of the players in those roles
    (:func:`gamedyn.players.roles`; the players are those with a recorded ``loss.<player>``, or,
    where a study's ``record:`` kept no losses, the owners of the recorded coordinates)."""
    players = [v.removeprefix("loss.") for v in variables if v.startswith("loss.")] or list(
        dict.fromkeys(v.split(".")[0] for v in variables
                      if "." in v and not v.startswith(("grad_norm.", "norm."))))
    cast = roles(players)
    if not set(GAN) <= set(cast):
        return None
    coords = [[v for v in variables if v.startswith(cast[r] + ".")] for r in GAN]
    return (coords[0][0], coords[1][0]) if all(coords) else None


def hue_column(runs) -> str | None:
    """The learning-rate column of the study (shared, the generator's, or a player's)."""
    own = sorted(c for c in runs.columns if c.startswith("optimizer.") and c.endswith(".lr"))
    for col in ("optimizer.lr", "optimizer.gen.lr", *own):
        if col in runs and runs[col].notna().any():
            return col
    return None


#: Most runs drawn per panel (an even sample in study order; the panel says "n of N runs shown").
MAX_SHOWN = 40


def shown(run_ids: list[str], most: int | None = None) -> list[str]:
    """An even, deterministic sample of at most ``most`` (default :data:`MAX_SHOWN`) of
    ``run_ids`` (all of them if fewer)."""
    most = MAX_SHOWN if most is None else most
    if len(run_ids) <= most:
        return list(run_ids)
    return [run_ids[i] for i in np.linspace(0, len(run_ids) - 1, most).round().astype(int)]


@FIGURES.register("phase_plane")
def phase_plane(results: Results, path: str | Path, zoom: float = 4.0) -> Path:
    """Trajectories in the (gen, disc) phase plane: one row per game, one column per rule, coloured
    by learning rate, the equilibrium marked with a star. Each panel shows ``zoom`` × the initial
    distance around the equilibrium (runs that leave it are clipped; their label says diverged),
    and at most :data:`MAX_SHOWN` of its runs (it says how many of how many). Only those runs'
    phase coordinates and distance are read from the trajectories table."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    plt = pyplot()
    runs = results.runs
    games = list(dict.fromkeys(runs["game_label"]))
    rules = list(dict.fromkeys(runs["rule_label"]))
    hue = hue_column(runs)
    fig, axes = panel_grid(len(games), len(rules), legend=1.5 if hue else 0.0)
    lrs = sorted(runs[hue].dropna().unique()) if hue else []
    cmap = colormaps["viridis"]
    palette = {lr: cmap(i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}
    for i, game in enumerate(games):
        grun = runs[runs["game_label"] == game]
        first = results.trajectories_for(grun["run_id"].iloc[:1], steps=[0])
        pv = _phase_vars(list(first["variable"].astype(str)))
        if pv is None:
            continue
        panels = {rule: shown(list(grun.loc[grun["rule_label"] == rule, "run_id"])) for rule in rules}
        t = results.trajectories_for([r for ids in panels.values() for r in ids],
                                     variables=[*pv, "distance"])
        wide = t.pivot_table(index=["run_id", "step"], columns="variable", values="value",
                             observed=True).reset_index()
        wide["run_id"] = wide["run_id"].astype(str)
        d0 = wide.loc[wide["step"] == 0, "distance"].max() if "distance" in wide else 1.0
        lim = zoom * (d0 if np.isfinite(d0) and d0 > 0 else 1.0)
        lr_of = dict(zip(grun["run_id"], grun[hue])) if hue else {}
        by_run = {rid: g for rid, g in wide.groupby("run_id", sort=False)}
        for j, rule in enumerate(rules):
            ax = axes[i, j]
            ids = [r for r in panels[rule] if r in by_run]
            lines = [by_run[r][[pv[0], pv[1]]].to_numpy() for r in ids]
            colours = [palette.get(lr_of.get(r), "C0") for r in ids]
            ax.add_collection(LineCollection(lines, colors=colours, linewidths=0.9, alpha=0.85))
            if lines:
                starts = np.array([line[0] for line in lines])
                ax.plot(starts[:, 0], starts[:, 1], "o", ms=3, color="0.3", ls="")
            ax.plot(0, 0, "*", ms=12, color="crimson", zorder=5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.axhline(0, color="0.85", lw=0.5, zorder=0)
            ax.axvline(0, color="0.85", lw=0.5, zorder=0)
            counts = grun.loc[grun["rule_label"] == rule, "dynamics"]
            summary = ", ".join(f"{n} {k}" for k, n in counts.value_counts().items())
            sample = f"\n{len(ids)} of {len(counts)} runs shown" if len(ids) < len(counts) else ""
            ax.set_title(f"{game} · {rule}\n{summary}{sample}", fontsize=8)
            ax.set_xlabel(pv[0], fontsize=8)
            ax.set_ylabel(pv[1], fontsize=8)
            ax.tick_params(labelsize=7)
    if hue:
        handles = [plt.Line2D([], [], color=c, lw=2, label=f"{v:g}") for v, c in palette.items()]
        handles.append(plt.Line2D([], [], marker="*", ls="", color="crimson", ms=10, label="equilibrium"))
        fig.legend(handles=handles, title=hue, loc="center right", fontsize=8)
    fig.suptitle(f"{results.study['name']}: trajectories in the phase plane")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
