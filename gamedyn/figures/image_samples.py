"""Generated images of each run's final generator, one row per configuration, one panel per seed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..results import Results
from ..tables import display_labels
from .base import FIGURES, as_images, config_value, image_grid, pyplot


@FIGURES.register("image_samples")
def image_samples(results: Results, path: str | Path, per_run: int = 16, seeds: int = 4) -> Path:
    """For ``module_gan`` studies on images: ``per_run`` images from the final generator of each run
    (:meth:`gamedyn.results.Results.players`; the same latents for every run, drawn from
    ``torch.Generator().manual_seed(0)``), one row per (game, rule, regularizer) configuration and
    one panel per seed (the first ``seeds``), beside a panel of data images. Each panel's title gives
    the seed and the run's final energy distance to the data in pixel space and D's mean outputs
    on data and samples. Grey levels span [−1, 1]."""
    import torch

    from .. import data as datasets

    plt = pyplot()
    runs = results.runs.assign(rule_label=display_labels(results.runs))
    if "players" not in runs:
        raise ValueError("image_samples needs the runs' final players (module_gan with save_players: true)")
    keys = ["game_label", "rule_label", "regularizer_label"]
    configs = list(dict.fromkeys(zip(*(runs[k] for k in keys))))
    n_seeds = min(seeds, int(runs.groupby(keys, observed=True).size().max()))
    first = runs.iloc[0]
    real = datasets.load(config_value(first["game.data"]))
    cols = math.ceil(math.sqrt(per_run))
    fig, axes = plt.subplots(len(configs), n_seeds + 1, figsize=(1.9 * (n_seeds + 1), 2.1 * len(configs)),
                             squeeze=False, constrained_layout=True)
    data_images = as_images(real.x[np.random.default_rng(0).choice(len(real.x), per_run)]) \
        if real.x is not None else None
    for i, config in enumerate(configs):
        mine = runs[(runs[keys] == list(config)).all(axis=1)].sort_values("seed").head(n_seeds)
        ax = axes[i, 0]
        if data_images is not None:
            ax.imshow(image_grid(data_images, cols), cmap="gray", vmin=-1, vmax=1)
        ax.set_title("data", fontsize=7)
        head = config[1] if config[2] == "none" else f"{config[1]}\n{config[2]}"
        ax.set_ylabel(head, fontsize=7)
        for j, (_, run) in enumerate(mine.iterrows()):
            ax = axes[i, j + 1]
            latent = config_value(run["game.latent"])
            g = torch.Generator().manual_seed(0)
            z = torch.randn(per_run, latent["dim"], generator=g, dtype=torch.float64) \
                if latent["dist"] == "normal" else 2 * torch.rand(per_run, latent["dim"], generator=g,
                                                                  dtype=torch.float64) - 1
            gen = results.players(run["run_id"])["gen"]
            with torch.no_grad():
                x = gen(z.to(next(gen.parameters()).dtype)).double().numpy()
            images = as_images(x)
            if images is not None:
                ax.imshow(image_grid(np.clip(images, -1, 1), cols), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"seed {run['seed']}: E {run.get('energy', np.nan):.2f}\n"
                         f"D {run.get('disc_real', np.nan):.2f} / {run.get('disc_fake', np.nan):.2f}",
                         fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{results.study['name']}: final generators' samples (E: energy distance to the data "
                 f"in pixels; D: mean output on data / samples)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
