"""The per-rule fit table of a mixture-of-Gaussians study, as bars (PNG) and as Markdown/CSV beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Results
from ..tables import markdown_table, rule_table
from .base import FIGURES, pyplot


@FIGURES.register("mog_table")
def mog_table(results: Results, path: str | Path) -> Path:
    """Per (game, rule): modes captured (mean ± s.e. over seeds), high-quality % (mean ± s.e.), KL of
    the mode histogram to uniform (mean ± s.e.) and the fraction of runs labelled mode_collapse
    (:func:`gamedyn.tables.rule_table`), as four bar panels. The table itself is written beside the
    PNG as ``<name>.md`` (Markdown) and ``<name>.csv``."""
    plt = pyplot()
    table = rule_table(results.runs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(markdown_table(table))
    table.to_csv(path.with_suffix(".csv"), index=False)

    games = list(dict.fromkeys(table["game_label"]))
    panels = [("modes", "modes_se", "modes captured"), ("high_quality_pct", "high_quality_pct_se",
              "high-quality samples (%)"), ("kl", "kl_se", "KL(modes ‖ uniform)"),
              ("mode_collapse", None, "fraction mode_collapse")]
    fig, axes = plt.subplots(len(games), len(panels), figsize=(3.4 * len(panels), 0.32 * len(table) + 1.6),
                             squeeze=False, constrained_layout=True)
    for i, game in enumerate(games):
        t = table[table["game_label"] == game]
        y = np.arange(len(t))
        for j, (col, err, title) in enumerate(panels):
            ax = axes[i, j]
            xerr = t[err].fillna(0).to_numpy() if err else None
            ax.barh(y, t[col], xerr=xerr, color="tab:blue" if j < 3 else "tab:red", alpha=0.8,
                    error_kw={"lw": 0.8, "capsize": 2})
            ax.set_yticks(y, t["rule_label"] if j == 0 else [""] * len(t), fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{game}:\n{title}" if j == 0 and len(games) > 1 else title, fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{results.study['name']}: fit at the last step per rule (mean ± s.e. over seeds)",
                 fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
