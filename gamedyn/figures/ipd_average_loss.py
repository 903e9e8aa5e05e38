"""The IPD figure of opponent shaping: the average loss per round over training, per rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from .base import FIGURES, pyplot


def rule_palette(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per rule label, in the order given (the study's order)."""
    import seaborn as sns

    return dict(zip(labels, sns.color_palette("tab10", max(len(labels), 10))))


@FIGURES.register("ipd_average_loss")
def ipd_average_loss(results: Results, path: str | Path) -> Path:
    """(a) The players' average loss per round (1 − γ)·(L₁ + L₂)/2 over training, per rule: median
    over runs with the interquartile band (mutual cooperation is 1, mutual defection 2; Letcher
    et al. 2019, Fig. 3); (b) each run's value at its last record, per rule."""
    plt = pyplot()
    w = results.wide(["loss.p1", "loss.p2"])
    w = w[w["game"] == "ipd"]
    w["average"] = (1 - w["game.gamma"]) * (w["loss.p1"] + w["loss.p2"]) / 2
    rules = list(dict.fromkeys(results.runs.loc[results.runs["game"] == "ipd", "rule_label"]))
    colours = rule_palette(rules)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.6, 1]})
    last = w.sort_values("step").groupby("run_id").tail(1)
    for i, rule in enumerate(rules):
        sub = w[w["rule_label"] == rule]
        g = sub.groupby("step")["average"]
        med, lo, hi = g.median(), g.quantile(0.25), g.quantile(0.75)
        axes[0].plot(med.index, med.values, color=colours[rule], lw=1.8, label=rule)
        axes[0].fill_between(med.index, lo.values, hi.values, color=colours[rule], alpha=0.12, lw=0)
        end = last.loc[last["rule_label"] == rule, "average"].to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.25, 0.25, len(end))
        axes[1].plot(end, i + jitter, "o", ms=3, color=colours[rule], alpha=0.6)
        axes[1].plot([np.median(end)] * 2, [i - 0.35, i + 0.35], color="black", lw=1.5)
    for value, text in ((1.0, " mutual cooperation"), (2.0, " mutual defection")):
        axes[0].axhline(value, color="0.5", ls=":", lw=1)
        axes[1].axvline(value, color="0.5", ls=":", lw=1)
        axes[0].text(axes[0].get_xlim()[1], value, text, va="center", fontsize=8, color="0.4")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("(1 − γ)·(L₁ + L₂)/2, average loss per round")
    axes[0].set_title("(a) average loss over training: median and interquartile band over runs",
                      fontsize=10)
    axes[0].legend(fontsize=8, ncol=2)
    axes[1].set_yticks(range(len(rules)), rules, fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set_xlabel("(1 − γ)·(L₁ + L₂)/2 at the last record")
    axes[1].set_title("(b) each run at the end (bar: median)", fontsize=10)
    n = last.groupby("rule_label").size()
    fig.suptitle(f"{results.study['name']}: iterated prisoner's dilemma, γ = "
                 f"{w['game.gamma'].iloc[0]:g}, {int(n.max()) if len(n) else 0} runs per rule")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
