"""Claim 5 (Goodfellow 2014, arXiv 1412.6515, §2–3): NCE, SCE/MLE and GANs as strategies in one game
with one value function, on the same data and model family."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..costs import VALUE_AT_EQUILIBRIUM
from ..densities import Mixture
from ..results import Results
from ._paper import STRATEGY_COLOURS, save, strategy
from .base import FIGURES, pyplot

_VARS = ["fit.kl", "fit.w1", "value", "model.mean", "model.std"]


def _data(row) -> Mixture:
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    if row["game.data"] == "gaussian":
        return Mixture(t([1.0]), t([row["game.data_mean"]]), t([row["game.data_std"]]))
    h, p = row["game.data_sep"] / 2, row["game.data_weight"]
    return Mixture(t([p, 1 - p]), t([row["game.data_mean"] - h, row["game.data_mean"] + h]),
                   t([row["game.data_std"]] * 2))


@FIGURES.register("paper_play")
def paper_play(results: Results, path: str | Path) -> Path:
    """One row per data distribution. Columns: KL(p_d ‖ p_m), the value V(p_c, p_g) of each
    strategy's own classifier and generator (−log 4 dotted), and W1 along training — exact
    gradients solid, minibatch dashed (mean over seeds); last, the data density (grey) and each
    strategy's final model (exact runs), with its dynamics/fit labels (exact; minibatch)."""
    plt = pyplot()
    w = results.wide(_VARS)
    w["strategy"] = w.apply(strategy, axis=1)
    runs = results.runs.copy()
    runs["strategy"] = runs.apply(strategy, axis=1)
    order = [s for s in STRATEGY_COLOURS if s in set(w["strategy"])]
    datas = list(dict.fromkeys(runs["game.data"]))
    fig, axes = plt.subplots(len(datas), 4, figsize=(21, 4.6 * len(datas)), squeeze=False,
                             constrained_layout=True)
    for i, data in enumerate(datas):
        wd = w[w["game.data"] == data]
        for s in order:
            for grad, ls, lw in (("exact", "-", 2.0), ("minibatch", "--", 1.2)):
                sub = wd[(wd["strategy"] == s) & (wd["game.gradient"] == grad)]
                if sub.empty:
                    continue
                mean = sub.groupby("step")[["fit.kl", "value", "fit.w1"]].mean()
                for j, var in enumerate(("fit.kl", "value", "fit.w1")):
                    axes[i, j].plot(mean.index, mean[var], ls=ls, lw=lw, color=STRATEGY_COLOURS[s],
                                    label=s if grad == "exact" else None)
        for j, (var, floor) in enumerate((("fit.kl", 1e-8), ("fit.w1", 1e-6))):
            ax = axes[i, 2 * j]
            ax.set_yscale("log")
            low = float(np.nanmin(wd[var].clip(lower=floor)))
            ax.set_ylim(bottom=max(floor, 0.5 * low))
        axes[i, 0].set_ylabel(f"data: {data}\n\nKL(p_d ‖ p_m)")
        axes[i, 1].axhline(VALUE_AT_EQUILIBRIUM, color="0.3", lw=0.8, ls=":")
        axes[i, 1].set_ylabel("V(p_c, p_g)")
        axes[i, 2].set_ylabel("W1(p_d, p_m)")
        for j, title in enumerate(("fit: KL(p_d ‖ p_m)", "the value V of the strategy's own "
                                   "classifier and generator", "fit: W1")):
            axes[i, j].set_title(title, fontsize=10)
            axes[i, j].set_xlabel("step")
            axes[i, j].grid(alpha=0.3)
        ax = axes[i, 3]
        rd = runs[runs["game.data"] == data]
        dist = _data(rd.iloc[0])
        lo = float((dist.means - 4 * dist.stds).min()) - 1
        hi = float((dist.means + 4 * dist.stds).max()) + 1
        x = torch.linspace(lo, hi, 800, dtype=torch.float64)[None]
        ax.fill_between(x[0].numpy(), np.exp(dist.log_prob(x)[0].numpy()), color="0.8", label="data")
        last = wd[wd["step"] == wd["step"].max()]
        for s in order:
            ex = last[(last["strategy"] == s) & (last["game.gradient"] == "exact")]
            if ex.empty:
                continue
            m, sd = float(ex["model.mean"].iloc[0]), float(ex["model.std"].iloc[0])
            dens = np.exp(-0.5 * ((x[0].numpy() - m) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            labels = []
            for grad in ("exact", "minibatch"):
                r = rd[(rd["strategy"] == s) & (rd["game.gradient"] == grad)]
                if len(r):
                    dyn = "/".join(sorted(set(r["dynamics"])))
                    labels.append(f"{dyn}, {'/'.join(sorted(set(r['fit'])))}")
            ax.plot(x[0].numpy(), dens, color=STRATEGY_COLOURS[s], lw=1.8,
                    label=f"{s}: {'; '.join(labels)}")
        ax.set_title("final models (exact); labels: exact; minibatch", fontsize=10)
        ax.set_xlabel("x")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="0.3", ls="-", lw=2), plt.Line2D([], [], color="0.3", ls="--")]
    labels += ["exact gradients", "minibatch (mean over seeds)"]
    fig.legend(handles, labels, loc="outside right center", fontsize=9)
    fig.suptitle("Estimation as play: NCE, SCE, MLE and GANs fit the same Gaussian family to the same "
                 "data, each with its own classifier and generator in V(p_c, p_g)", fontsize=12)
    return save(fig, path)
