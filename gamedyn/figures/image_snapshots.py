"""Generated images over training: per configuration and seed, the samples kept at chosen steps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import Results
from .base import FIGURES, as_images, config_value, configurations, image_grid, pyplot

#: Pixels between cells (across, down: room for a cell's caption), and between configurations.
_GAP_X, _GAP_Y, _GAP_CONFIG = 4, 11, 6
#: Inches per image pixel (an 8 × 8 digit: about a fifth of an inch).
_INCH = 0.021


@FIGURES.register("image_snapshots")
def image_snapshots(results: Results, path: str | Path, seeds: int = 3, rows_per_block: int = 12) -> Path:
    """For ``module_gan`` runs with ``snapshots``: one row per configuration
    (:func:`gamedyn.figures.base.configurations`) and seed (the first ``seeds``), one column per
    kept step and one for the final generator, each cell the run's images on its first fixed
    evaluation latents (the same latents in every cell of a row: what changes is the generator),
    grey levels on [−1, 1]. Under each cell: classes covered and KL of the class histogram to the
    data's label frequencies at that step (``fit.classes_covered``, ``fit.class_kl``; Metz et al.
    2017, arXiv 1611.02163), or, without labels, the energy distance to the data (``fit.energy``).
    A cell is blank where the run had stopped (``stopped_step``) or the step was not recorded; the
    title names snapshot steps that were asked for but are no record steps. The first row holds data
    images for reference. Rows are wrapped into as few side-by-side blocks of about equal height as
    keep them to ``rows_per_block`` rows (whole configurations: a block may hold more when one
    configuration does), so that a large study stays one readable page."""
    from .. import data as datasets
    from ..games.module_gan import decode_snapshots

    runs = results.runs
    if "snapshots" not in runs or not runs["snapshots"].map(lambda v: isinstance(v, str)).any():
        raise ValueError("image_snapshots needs the runs' snapshots (module_gan with the game key "
                         "snapshots: {steps: [record steps]})")
    runs = runs[runs["snapshots"].map(lambda v: isinstance(v, str))]
    conf = configurations(runs)
    label = conf.astype(str).agg(" · ".join, axis=1)
    chosen = [runs[label == c].sort_values("seed").head(seeds) for c in dict.fromkeys(label)]
    shots = {r: decode_snapshots(t) for rs in chosen for r, t in zip(rs["run_id"], rs["snapshots"])}
    steps = sorted({s for d in shots.values() for s in d if isinstance(s, int)})
    missing = sorted({s for d in shots.values() for s in d["missing"]})
    columns: list[int | str] = [*steps, "final"]
    captions = _captions(results, list(shots), steps)
    first = next(iter(shots.values()))["final"]
    if as_images(first) is None:
        raise ValueError(f"image_snapshots draws images; these samples have shape {list(first.shape[1:])}")
    per_row = math.ceil(math.sqrt(len(first)))

    def cell(images: np.ndarray) -> np.ndarray:
        return image_grid(np.clip(as_images(images), -1, 1), per_row)

    # rows: (label, [(picture or None, caption)] per column), a None row between configurations
    real = datasets.load(config_value(runs["game.data"].iloc[0]))
    data_row: list[tuple[np.ndarray | None, str]] = [(None, "")] * len(columns)
    if real.x is not None:
        pick = np.random.default_rng(0).choice(len(real.x), len(first), replace=len(real.x) < len(first))
        data_row = [(cell(real.x[pick]), "")] + data_row[1:]
    groups: list[list[tuple[str, list]]] = []   # the rows of each configuration
    for rs in chosen:
        rows = []
        for _, run in rs.iterrows():
            d = shots[run["run_id"]]
            stopped = run.get("stopped_step")
            stopped = float(stopped) if pd.notna(stopped) else math.inf
            cells = []
            for step in columns:
                at = run["steps_done"] if step == "final" else step
                if step not in d or at >= stopped:
                    cells.append((None, "stopped" if step in d else "—"))
                else:
                    cells.append((cell(d[step]), captions.get((run["run_id"], step), "")))
            rows.append((f"{label[run.name]}  seed {run['seed']}", cells))
        groups.append(rows)
    total = sum(len(g) for g in groups)   # as few blocks as rows_per_block allows, filled evenly
    target = math.ceil(total / math.ceil(total / rows_per_block))
    blocks: list[list[tuple[str, list] | None]] = [[("data", data_row), None]]
    for rows in groups:
        held = sum(1 for r in blocks[-1][1:] if r)   # runs in the block
        if held and held + len(rows) > target:
            blocks.append([("", [(None, "")] * len(columns)), None])   # aligned with the data row
        blocks[-1] += rows + [None]

    h, w = cell(first).shape
    plt = pyplot()
    top, bottom = 0.75, 0.1
    lefts = [0.3 + 0.052 * max(len(r[0]) for r in b if r) for b in blocks]
    heights = [sum(h + _GAP_Y if r else _GAP_CONFIG for r in b) for b in blocks]
    W = len(columns) * (w + _GAP_X) - _GAP_X
    H = max(heights)
    fig_w = max(sum(lefts) + len(blocks) * (W * _INCH + 0.2), 6.0)
    fig = plt.figure(figsize=(fig_w, H * _INCH + top + bottom))
    fw, fh = fig.get_size_inches()
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    x0 = 0.0
    last = int(runs["steps_done"].max())
    for b, block in enumerate(blocks):
        x0 += lefts[b]
        ax = fig.add_axes((x0 / fw, bottom / fh, W * _INCH / fw, H * _INCH / fh))
        x0 += W * _INCH + 0.2
        mosaic = np.full((H, W), np.nan)
        yticks: list[tuple[float, str]] = []
        y = 0
        for row in block:
            if row is None:
                y += _GAP_CONFIG
                continue
            name, cells = row
            for j, (picture, caption) in enumerate(cells):
                x = j * (w + _GAP_X)
                if picture is not None:
                    mosaic[y:y + h, x:x + w] = picture
                    ax.text(x + w / 2, y + h + 1, caption, ha="center", va="top", fontsize=5.5,
                            color="0.25")
                elif caption:
                    ax.text(x + w / 2, y + h / 2, caption, ha="center", va="center", fontsize=6,
                            color="0.4")
            if name:
                yticks.append((y + h / 2, name))
            y += h + _GAP_Y
        ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest",
                  aspect="equal")
        ax.set_yticks([t for t, _ in yticks], [s for _, s in yticks], fontsize=6.5)
        ax.set_xticks([j * (w + _GAP_X) + w / 2 for j in range(len(columns))],
                      [f"step {s}" if s != "final" else f"final ({last})" for s in columns], fontsize=7)
        ax.xaxis.tick_top()
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    what = "classes covered · class KL" if any("KL" in c for c in captions.values()) \
        else "energy distance to the data"
    note = f"; not kept, no record steps: {', '.join(map(str, missing))}" if missing else ""
    fig.suptitle(f"{results.study['name']}: samples over training, each run on its own fixed "
                 f"evaluation latents (under each: {what}{note})", fontsize=8, x=0.02,
                 y=1 - 0.08 / fh, ha="left", va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _captions(results: Results, run_ids: list[str], steps: list[int]) -> dict[tuple[str, int | str], str]:
    """(run, step) -> the caption of its cell: classes covered and class KL at that record (the
    final ones from the runs table), or the energy distance where the data have no labels."""
    labelled = ["fit.classes_covered", "fit.class_kl"]
    t = results.trajectories_for(run_ids, [*labelled, "fit.energy"], steps)
    runs = results.runs.set_index("run_id")
    out: dict[tuple[str, int | str], str] = {}
    wide = t.pivot_table(index=["run_id", "step"], columns="variable", values="value", observed=True) \
        if len(t) else pd.DataFrame()

    def caption(row: pd.Series | dict, covered: str, kl: str, energy: str) -> str:
        c, k = row.get(covered, np.nan), row.get(kl, np.nan)
        if np.isfinite(c) and np.isfinite(k):
            return f"{c:.0f} cl · KL {k:.2f}"
        e = row.get(energy, np.nan)
        return f"E {e:.2f}" if np.isfinite(e) else ""

    for (run_id, step), row in wide.iterrows():
        out[(str(run_id), int(step))] = caption(row, *labelled, "fit.energy")
    for run_id in run_ids:
        out[(run_id, "final")] = caption(runs.loc[run_id], "classes_covered", "class_kl", "energy")
    return out
