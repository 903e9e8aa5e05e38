"""Generated samples over the data, at several steps, one row per rule (mixture-of-Gaussians games)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..results import Results
from ..tables import display_labels
from .base import FIGURES, pyplot


def game_of(runs: pd.DataFrame, run_id: str) -> Any:
    """The game of one run, rebuilt from the runs table's ``game`` and ``game.<param>`` columns."""
    import torch

    from ..games import GAMES

    row = runs.loc[runs["run_id"] == run_id].iloc[0]
    cls = GAMES.get(row["game"])
    given = {}
    for key, param in cls.params.items():
        col = f"game.{key}"
        if col in row and not (isinstance(row[col], float) and math.isnan(row[col])):
            value = row[col]
            given[key] = int(value) if param.type is int else param.type(value)
    return cls.build([cls.resolve(given, "game")], torch.float64)


def _sample_vars(variables: list[str]) -> tuple[list[str], list[str]]:
    xs = sorted((v for v in variables if v.startswith("sample[") and v.endswith(".x")),
                key=lambda v: int(v[7:v.index("]")]))
    ys = [v[:-2] + ".y" for v in xs if v[:-2] + ".y" in variables]
    return xs, ys


@FIGURES.register("mog_samples")
def mog_samples(results: Results, path: str | Path, columns: int = 5, seed: int | None = None) -> Path:
    """A grid of small scatter panels: one row per (game, rule), one column per step (``columns``
    recorded steps evenly spread from 0 to the last), the generated evaluation samples (the game's
    ``plot_samples``; blue) of one seed (the smallest, or ``seed``) over a data sample (grey). Each
    row is labelled with the rule and the fit and dynamics labels of all its seeds; each panel with
    the step and that run's modes captured and high-quality %. 1-D games: histograms."""
    plt = pyplot()
    runs, traj = results.runs, results.trajectories
    runs = runs.assign(rule_label=display_labels(runs))
    variables = [str(v) for v in traj["variable"].unique()]
    xs, ys = _sample_vars(variables)
    rows = list(dict.fromkeys(zip(runs["game_label"], runs["rule_label"])))
    steps_all = np.sort(traj["step"].unique())
    pick = np.unique(np.round(np.linspace(0, len(steps_all) - 1, min(columns, len(steps_all)))).astype(int))
    steps = steps_all[pick]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.1 * len(steps), 2.25 * len(rows)),
                             squeeze=False, constrained_layout=True)
    wanted = set(xs) | set(ys) | {"fit.modes", "fit.high_quality"}
    sub = traj[traj["variable"].isin(wanted) & traj["step"].isin(steps)]
    sub = sub.assign(run_id=sub["run_id"].astype(str), variable=sub["variable"].astype(str))
    rng = np.random.default_rng(0)
    for i, (game_label, rule_label) in enumerate(rows):
        mine = runs[(runs["game_label"] == game_label) & (runs["rule_label"] == rule_label)]
        run = mine.sort_values("seed").iloc[0] if seed is None else mine[mine["seed"] == seed].iloc[0]
        game = game_of(runs, run["run_id"])
        means = game.means()
        data = means[rng.integers(0, len(means), 2000)] + game.sigma * rng.standard_normal((2000, game.dim))
        lim = np.abs(means).max() * 1.35 + 6 * game.sigma
        r = sub[sub["run_id"] == run["run_id"]].pivot_table(index="step", columns="variable",
                                                            values="value", observed=True)
        summary = "\n".join(", ".join(f"{n} {k}" for k, n in mine[col].value_counts().items())
                            for col in ("fit", "dynamics") if col in mine)
        for j, step in enumerate(steps):
            ax = axes[i, j]
            if step in r.index and xs:
                gx = r.loc[step, xs].to_numpy(dtype=float)
                if game.dim == 1:
                    bins = np.linspace(-lim, lim, 80)
                    ax.hist(data[:, 0], bins=bins, density=True, color="0.75")
                    ax.hist(gx, bins=bins, density=True, color="tab:blue", alpha=0.7)
                    ax.set_yticks([])
                else:
                    gy = r.loc[step, ys].to_numpy(dtype=float)
                    ax.scatter(data[:, 0], data[:, 1], s=10, color="0.55", lw=0, zorder=1)
                    ax.scatter(gx, gy, s=3, color="tab:blue", lw=0, alpha=0.6, zorder=2)
                    ax.set_ylim(-lim, lim)
                    ax.set_aspect("equal")
                m, q = r.loc[step].get("fit.modes", np.nan), r.loc[step].get("fit.high_quality", np.nan)
                ax.set_title(f"step {step}: {m:.0f} modes, {100 * q:.0f}% hq", fontsize=7)
            else:
                ax.set_title(f"step {step}: (no samples)", fontsize=7)
            ax.set_xlim(-lim, lim)
            ax.tick_params(labelsize=6)
            if j == 0:
                head = rule_label if len(set(runs["game_label"])) == 1 else f"{game_label}\n{rule_label}"
                ax.set_ylabel(f"{head}\n{summary}", fontsize=7)
    fig.suptitle(f"{results.study['name']}: generated samples (blue) over the data (grey), "
                 f"seed {'min' if seed is None else seed}; rows: rule (fit and dynamics labels of "
                 f"all seeds)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
