"""The class-coverage table of a GAN study on labelled images, rendered, and as Markdown/CSV beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..results import Results
from ..tables import standard_error
from .base import FIGURES, config_value, configurations, pyplot

#: Runs-table columns summarised as mean ± s.e. over seeds: (column, heading, decimals).
METRICS = (("classes_covered", "classes covered", 1), ("class_kl", "class KL", 2),
           ("confident", "confident", 2), ("frechet", "Fréchet (features)", 2),
           ("frechet_pixels", "Fréchet (pixels)", 2))


def class_table_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (:func:`gamedyn.figures.base.configurations`, in the order of first
    appearance): its configuration columns, ``runs``, each metric of :data:`METRICS` present as mean
    and standard error over the seeds (``<metric>``, ``<metric>_se``; :func:`gamedyn.tables.standard_error`)
    and ``fit``, the seeds' fit labels counted (``2 × underfit, mode_collapse``), and likewise
    ``dynamics``, their dynamics labels (``3 × cycling``: none converged)."""
    conf = configurations(runs)
    keys = list(conf.columns)
    labels = ["fit"] + (["dynamics"] if "dynamics" in runs else [])
    frame = pd.concat([conf, runs[[m for m, _, _ in METRICS if m in runs] + labels]], axis=1)
    g = frame.groupby(keys, sort=False)
    out = g.size().rename("runs").to_frame()
    for m, _, _ in METRICS:
        if m in frame:
            out[m] = g[m].mean()
            out[f"{m}_se"] = g[m].agg(standard_error)
    for label in labels:
        out[label] = g[label].agg(_counted)
    return out.reset_index()


def _classes(runs: pd.DataFrame) -> int:
    """The number of classes of the runs' data (the first run's ``game.data``)."""
    from .. import data as datasets

    y = datasets.load(config_value(runs["game.data"].iloc[0])).y
    return int(len(np.unique(y))) if y is not None else 2


def _counted(labels: pd.Series) -> str:
    """Labels counted, most frequent first: ``2 × underfit, mode_collapse``."""
    counts = labels.astype(str).value_counts(sort=False).sort_values(ascending=False, kind="stable")
    return ", ".join(f"{n} × {k}" if n > 1 else k for k, n in counts.items())


def _cells(table: pd.DataFrame, keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """The table's headings and text cells (mean ± s.e., the s.e. left out where there is one seed)."""
    metrics = [(m, head, d) for m, head, d in METRICS if m in table]
    labels = ["fit"] + (["dynamics"] if "dynamics" in table else [])
    heads = [*keys, "runs", *(head for _, head, _ in metrics), *(f"{k} (seeds)" for k in labels)]
    rows = []
    for _, r in table.iterrows():
        cells = [str(r[k]) for k in keys] + [str(int(r["runs"]))]
        for m, _, d in metrics:
            se = r[f"{m}_se"]
            cells.append(f"{r[m]:.{d}f}" + (f" ± {se:.{d}f}" if np.isfinite(se) else ""))
        rows.append(cells + [r[k] for k in labels])
    return heads, rows


def _markdown(heads: list[str], rows: list[list[str]], numeric: range) -> str:
    """A Markdown table; the ``numeric`` columns right-aligned."""
    align = ["---:" if i in numeric else "---" for i in range(len(heads))]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@FIGURES.register("class_table")
def class_table(results: Results, path: str | Path) -> Path:
    """For GAN studies on labelled data (``module_gan``'s class metrics, :func:`gamedyn.fit.class_metrics`):
    per configuration, the final classes covered (classes holding at least ``hold_fraction``/C of
    the samples), the KL divergence of the generated class histogram from the data's label
    frequencies (mode counting with a classifier, Metz et al. 2017, arXiv 1611.02163; Srivastava et
    al. 2017, arXiv 1705.07761; Lin et al. 2018, arXiv 1712.04086), the share of confidently
    classified samples, and the squared Fréchet distances to the data on the classifier's features
    and on pixels (Heusel et al. 2017, arXiv 1706.08500, on a small feature network of the data's
    own: not Inception-FID), as mean ± standard error over seeds, with the seeds' fit and dynamics
    labels counted (:func:`class_table_frame`), rendered as a table whose class-KL cells are
    shaded from light (the data's frequencies) to dark (log C: all samples in one class of
    frequency 1/C). The table is also written beside the PNG as ``<name>.md`` and ``<name>.csv``."""
    runs = results.runs
    if "class_kl" not in runs or runs["class_kl"].isna().all():
        raise ValueError("class_table needs class metrics: module_gan on labelled data (digits, or a "
                         "file with labels y)")
    table = class_table_frame(runs)
    keys = list(configurations(runs).columns)
    heads, rows = _cells(table, keys)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_labels = 1 + ("dynamics" in table)
    numeric = range(len(keys), len(heads) - n_labels)
    path.with_suffix(".md").write_text(_markdown(heads, rows, numeric))
    table.to_csv(path.with_suffix(".csv"), index=False)

    plt = pyplot()
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    W = 0.065 * sum(widths) + 0.15 * len(heads) + 0.3
    fig = plt.figure(figsize=(W, 0.22 * (len(rows) + 1) + 0.45))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.3 / fig.get_size_inches()[1]))
    ax.axis("off")
    cells = ax.table(cellText=rows, colLabels=heads, loc="upper center", cellLoc="right",
                     colWidths=[w / sum(widths) for w in widths])
    cells.auto_set_font_size(False)
    cells.set_fontsize(7)
    cells.scale(1, 1.25)
    kl = table["class_kl"].to_numpy(dtype=float)
    top = np.log(_classes(runs))   # KL of a single class of frequency 1/C: the shade's top
    shade = plt.get_cmap("Reds")
    at = heads.index("class KL")
    for (i, j), cell in cells.get_celld().items():
        cell.set_linewidth(0.3)
        if i == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("0.92")
        elif j not in numeric:
            cell.set_text_props(ha="left")
        if i > 0 and j == at and np.isfinite(kl[i - 1]):
            cell.set_facecolor(shade(0.05 + 0.6 * min(1.0, kl[i - 1] / max(top, 1e-12))))
    fig.suptitle(f"{results.study['name']}: class coverage at the last step (mean ± s.e. over seeds; "
                 f"class KL from the data's label frequencies)", fontsize=8,
                 y=1 - 0.1 / fig.get_size_inches()[1], va="top")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
