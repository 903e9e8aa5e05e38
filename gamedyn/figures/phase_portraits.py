"""Phase portraits of two-parameter games: each rule's trajectories over the game's own field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..games import GAMES
from ..results import Results
from ..rules.context import Context
from .base import FIGURES, pyplot


def _game(runs, name: str):
    """The game of the runs named ``name``, built from their ``game.*`` columns (first run's)."""
    cls = GAMES.get(name)
    row = runs[runs["game"] == name].iloc[0]
    given = {k: row[f"game.{k}"] for k in cls.params if f"game.{k}" in runs}
    return cls.build([cls.resolve(given, "game")], torch.float64)


def _field(game, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """−ξ on the grid (the direction of simultaneous gradient play), both coordinates."""
    X, Y = np.meshgrid(xs, ys)
    (p1, (n1,)), (p2, (n2,)) = [(p, tuple(named)) for p, named in game.shapes().items()]
    params = {p1: {n1: torch.tensor(X.ravel())}, p2: {n2: torch.tensor(Y.ravel())}}
    xi = Context(game, {}).grad(params)
    return -xi[p1][n1].numpy().reshape(X.shape), -xi[p2][n2].numpy().reshape(X.shape)


@FIGURES.register("phase_portraits")
def phase_portraits(results: Results, path: str | Path, columns: int = 5) -> Path:
    """For each game with one scalar parameter per player (tandem, matching pennies, the quartic
    game): one panel per rule with every run's trajectory (start: dot, end: cross) over the
    streamlines of the game's simultaneous field −ξ (grey), the game's critical point marked
    (star) where it knows one; panel titles count the dynamics labels."""
    plt = pyplot()
    runs = results.runs
    panels = []
    for game_name in dict.fromkeys(runs["game"]):
        game = _game(runs, game_name)
        shapes = game.shapes()
        if len(shapes) != 2 or any(len(n) != 1 or next(iter(n.values())) != () for n in shapes.values()):
            continue
        coords = [f"{p}.{next(iter(n))}" for p, n in shapes.items()]
        for rule in dict.fromkeys(runs.loc[runs["game"] == game_name, "rule_label"]):
            panels.append((game_name, game, coords, rule))
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.4 * rows), squeeze=False,
                             constrained_layout=True)
    wides = {}
    for ax, (game_name, game, coords, rule) in zip(axes.ravel(), panels):
        if game_name not in wides:
            w = results.wide(coords)
            wides[game_name] = w[w["game"] == game_name]
        w = wides[game_name]
        values = w[coords].to_numpy()
        values = values[np.isfinite(values).all(1)]
        span = float(np.quantile(np.abs(values), 0.99)) * 1.1 if len(values) else 1.0
        span = max(span, 0.5)
        grid = np.linspace(-span, span, 41)
        u, v = _field(game, grid, grid)
        ax.streamplot(grid, grid, u, v, color="0.75", linewidth=0.6, density=1.0, arrowsize=0.7)
        sub = w[w["rule_label"] == rule]
        for _, run in sub.groupby("run_id", sort=False):
            run = run.sort_values("step")
            ax.plot(run[coords[0]], run[coords[1]], lw=0.6, alpha=0.6, color="tab:blue")
            ax.plot(run[coords[0]].iloc[0], run[coords[1]].iloc[0], "o", ms=2, color="0.3")
            ax.plot(run[coords[0]].iloc[-1], run[coords[1]].iloc[-1], "x", ms=4, color="tab:red")
        eq = game.equilibrium()
        if eq is not None:
            (p1, n1), (p2, n2) = [c.split(".") for c in coords]
            ax.plot(float(eq[p1][n1]), float(eq[p2][n2]), "*", ms=12, color="crimson", zorder=5)
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
        counts = runs.loc[(runs["game"] == game_name) & (runs["rule_label"] == rule), "dynamics"]
        summary = ", ".join(f"{n} {k}" for k, n in counts.value_counts().items())
        ax.set_title(f"{game_name} · {rule}\n{summary}", fontsize=8)
        ax.set_xlabel(coords[0], fontsize=8)
        ax.set_ylabel(coords[1], fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{results.study['name']}: phase portraits (grey: the game's field −ξ; "
                 "dot: start, cross: end)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
