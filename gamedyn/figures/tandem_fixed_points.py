"""The tandem figure of opponent shaping: where each rule's runs end, against the fixed line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from .base import FIGURES, pyplot
from .ipd_average_loss import rule_palette


@FIGURES.register("tandem_fixed_points")
def tandem_fixed_points(results: Results, path: str | Path) -> Path:
    """(a) Each run's last recorded point (x, y) on tandem (runs labelled diverged left out and
    with each rule's dynamics labels counted in (b)), per rule, with the game's line of fixed
    points x + y = 1 and LOLA's, x + y = (1 − 2α)/(1 − 4α) for each α of the study's LOLA runs
    (``gamedyn.rules.lola``); (b) x + y at the last record, per rule (Letcher et al. 2019, Fig. 2)."""
    plt = pyplot()
    w = results.wide(["p1.x", "p2.y"])
    w = w[w["game"] == "tandem"]
    runs = results.runs[results.runs["game"] == "tandem"]
    diverged = set(runs.loc[runs["dynamics"] == "diverged", "run_id"])
    last = w.sort_values("step").groupby("run_id").tail(1).copy()
    last = last[~last["run_id"].isin(diverged)]      # a diverged run's last record means nothing
    last["u"] = last["p1.x"] + last["p2.y"]
    rules = list(dict.fromkeys(runs["rule_label"]))
    labels = runs.groupby("rule_label")["dynamics"].value_counts()
    colours = rule_palette(rules)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.6), constrained_layout=True)
    lines = {1.0: "fixed points of the game, x + y = 1"}
    if "rule.alpha" in runs:
        for a in sorted(runs.loc[runs["rule"] == "lola", "rule.alpha"].dropna().unique()):
            if a < 0.25:
                lines[(1 - 2 * a) / (1 - 4 * a)] = f"LOLA's fixed points at α = {a:g}"
    finite = last[np.isfinite(last["u"])]
    span = max(1.0, float(np.nanquantile(np.abs(finite[["p1.x", "p2.y"]].to_numpy()), 0.99))
               if len(finite) else 1.0) * 1.2
    xs = np.array([-span, span])
    for k, (u, text) in enumerate(lines.items()):
        axes[0].plot(xs, u - xs, color="black" if k == 0 else "crimson", ls="-" if k == 0 else "--",
                     lw=1, label=text)
        axes[1].axvline(u, color="black" if k == 0 else "crimson", ls="-" if k == 0 else "--",
                        lw=1)
    for i, rule in enumerate(rules):
        sub = last[last["rule_label"] == rule]
        axes[0].plot(sub["p1.x"], sub["p2.y"], "o", ms=4, color=colours[rule], alpha=0.7,
                     label=rule)
        jitter = np.random.default_rng(i).uniform(-0.25, 0.25, len(sub))
        axes[1].plot(sub["u"], i + jitter, "o", ms=3, color=colours[rule], alpha=0.6)
    axes[0].set_xlim(-span, span)
    axes[0].set_ylim(-span, span)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("x (player 1)")
    axes[0].set_ylabel("y (player 2)")
    axes[0].set_title("(a) last recorded point of each run", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside right center")
    ticks = [f"{r}\n({', '.join(f'{n} {k}' for k, n in labels[r].items())})" for r in rules]
    axes[1].set_yticks(range(len(rules)), ticks, fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set_xlabel("x + y at the last record")
    axes[1].set_title("(b) x + y per rule (solid: the game's line; dashed: LOLA's)", fontsize=10)
    fig.suptitle(f"{results.study['name']}: tandem, L₁ = (x + y)² − 2x, L₂ = (x + y)² − 2y")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
