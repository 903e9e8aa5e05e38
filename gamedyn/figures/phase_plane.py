"""The phase-plane figure: each run's (gen, disc) trajectory around the equilibrium."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from .base import FIGURES, pyplot


def _phase_vars(variables: list[str]) -> tuple[str, str] | None:
    """The first recorded coordinate of gen and of disc."""
    gen = [v for v in variables if v.startswith("gen.")]
    disc = [v for v in variables if v.startswith("disc.")]
    return (gen[0], disc[0]) if gen and disc else None


def hue_column(runs) -> str | None:
    """The learning-rate column of the study (shared or the generator's)."""
    for col in ("optimizer.lr", "optimizer.gen.lr"):
        if col in runs and runs[col].notna().any():
            return col
    return None


@FIGURES.register("phase_plane")
def phase_plane(results: Results, path: str | Path, zoom: float = 4.0) -> Path:
    """Trajectories in the (gen, disc) phase plane: one row per game, one column per rule, coloured
    by learning rate, the equilibrium marked with a star. Each panel shows ``zoom`` × the initial
    distance around the equilibrium (runs that leave it are clipped; their label says diverged)."""
    import seaborn as sns

    plt = pyplot()
    runs, traj = results.runs, results.trajectories
    games = list(dict.fromkeys(runs["game_label"]))
    rules = list(dict.fromkeys(runs["rule_label"]))
    hue = hue_column(runs)
    fig, axes = plt.subplots(len(games), len(rules), figsize=(3.2 * len(rules), 3.0 * len(games)),
                             squeeze=False, constrained_layout=True)
    lrs = sorted(runs[hue].dropna().unique()) if hue else []
    palette = dict(zip(lrs, sns.color_palette("viridis", len(lrs))))
    for i, game in enumerate(games):
        grun = runs[runs["game_label"] == game]
        names = list(traj.loc[traj["run_id"].isin(grun["run_id"]), "variable"].unique())
        pv = _phase_vars(names)
        if pv is None:
            continue
        wide = results.wide([*pv, "distance"])
        wide = wide[wide["game_label"] == game]
        d0 = wide.loc[wide["step"] == 0, "distance"].max() if "distance" in wide else 1.0
        lim = zoom * (d0 if np.isfinite(d0) and d0 > 0 else 1.0)
        for j, rule in enumerate(rules):
            ax = axes[i, j]
            sub = wide[wide["rule_label"] == rule]
            for _, run in sub.groupby("run_id", sort=False):
                colour = palette.get(run[hue].iloc[0]) if hue else None
                ax.plot(run[pv[0]], run[pv[1]], lw=0.9, color=colour, alpha=0.85)
                ax.plot(run[pv[0]].iloc[0], run[pv[1]].iloc[0], "o", ms=3, color="0.3")
            ax.plot(0, 0, "*", ms=12, color="crimson", zorder=5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.axhline(0, color="0.85", lw=0.5, zorder=0)
            ax.axvline(0, color="0.85", lw=0.5, zorder=0)
            counts = runs.loc[(runs["game_label"] == game) & (runs["rule_label"] == rule), "dynamics"]
            summary = ", ".join(f"{n} {k}" for k, n in counts.value_counts().items())
            ax.set_title(f"{game} · {rule}\n{summary}", fontsize=8)
            ax.set_xlabel(pv[0], fontsize=8)
            ax.set_ylabel(pv[1], fontsize=8)
            ax.tick_params(labelsize=7)
    if hue:
        handles = [plt.Line2D([], [], color=c, lw=2, label=f"{v:g}") for v, c in palette.items()]
        handles.append(plt.Line2D([], [], marker="*", ls="", color="crimson", ms=10, label="equilibrium"))
        fig.legend(handles=handles, title=hue, loc="outside right center", fontsize=8)
    fig.suptitle(f"{results.study['name']}: trajectories in the phase plane")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
