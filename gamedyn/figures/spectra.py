"""Spectra along training and the path-angle: rotation against attraction (gamedyn.spectra)."""

from __future__ import annotations

from pathlib import Path

from ..results import Results
from .base import FIGURES, pyplot
from .phase_plane import shown

#: Runs per configuration whose eigenvalues are drawn (an even sample).
MAX_RUNS = 8


def _panels(runs) -> list[tuple[str, list[str]]]:
    """(title, run ids) per configuration: the game, rule and regularizer labels and the learning
    rate, those that vary."""
    cols = [c for c in ("game_label", "rule_label", "regularizer_label", "optimizer.lr") if c in runs
            and runs[c].nunique() > 1] or ["rule_label"]
    return [(" · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))),
             list(g["run_id"])) for key, g in runs.groupby(cols, sort=False)]


@FIGURES.register("spectra")
def spectra_figure(results: Results, path: str | Path) -> Path:
    """Per configuration (a column): top, the game Jacobian's eigenvalues in the complex plane at
    the recorded steps, coloured by step (up to :data:`MAX_RUNS` runs); bottom, rotation against
    attraction over training — the median over its runs of the Hamiltonian share ‖A‖²/‖H‖² and of
    the largest real part max Re λ (right axis) against the step (:func:`gamedyn.spectra.along`,
    without the update map)."""
    from .. import spectra

    plt = pyplot()
    panels = _panels(results.runs)
    keep = [r for _, ids in panels for r in shown(ids, MAX_RUNS)]
    table = spectra.along(results, update_map=False)
    fig, axes = plt.subplots(2, len(panels), squeeze=False, constrained_layout=True,
                             figsize=(3.3 * len(panels) + 0.8, 6.0))
    steps_max = max(table["step"].max(), 1)
    re_cols = [c for c in table.columns if c.startswith("eig.re.")]
    for j, (title, ids) in enumerate(panels):
        ax = axes[0, j]
        sub = table[table["run_id"].isin([r for r in ids if r in keep])]
        for c in re_cols:
            im = ax.scatter(sub[c], sub[c.replace(".re.", ".im.")], c=sub["step"], s=6,
                            cmap="viridis", vmin=0, vmax=steps_max, lw=0)
        ax.axvline(0, color="0.7", lw=0.6)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("Re λ (attraction)", fontsize=8)
        ax.set_ylabel("Im λ (rotation)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax = axes[1, j]
        med = table[table["run_id"].isin(ids)].groupby("step")[["A_share", "re_max"]].median()
        ax.plot(med.index, med["A_share"], color="C3", label="‖A‖²/‖H‖² (rotation)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("Hamiltonian share", fontsize=8, color="C3")
        ax.tick_params(labelsize=7)
        ax2 = ax.twinx()
        ax2.plot(med.index, med["re_max"], color="C0", label="max Re λ")
        ax2.set_ylabel("max Re λ (median)", fontsize=8, color="C0")
        ax2.tick_params(labelsize=7)
    if re_cols:
        fig.colorbar(im, ax=axes[0, :].tolist(), label="step", shrink=0.8)
    fig.suptitle(f"{results.study['name']}: game Jacobian spectra along training", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@FIGURES.register("path_angle")
def path_angle_figure(results: Results, path: str | Path) -> Path:
    """The path-angle of Berard et al. 2020 per configuration: on the line from each run's first
    point (α = 0) to its last (α = 1), α ∈ [−0.1, 1.1], the cosine between the joint field and the
    line (top) and ‖ξ‖² (bottom, log scale), for up to :data:`MAX_RUNS` runs
    (:func:`gamedyn.spectra.path_angle`, the game evaluated at each α for all the runs at once).
    The points are the recorded coordinates (small players), or, for networks whose final weights
    a game keeps (``module_gan``'s ``players``), the initial weights (rebuilt from each run's seed
    and ``init`` as its batch built them) and the final ones."""
    from .. import spectra
    from ..study import make_study

    plt = pyplot()
    study = make_study(results.study)
    by_id = {r.run_id: r for r in study.runs}
    panels = _panels(results.runs)
    fig, axes = plt.subplots(2, len(panels), squeeze=False, constrained_layout=True,
                             figsize=(3.3 * len(panels), 5.0), sharex=True)
    for j, (title, ids) in enumerate(panels):
        ids = shown(ids, MAX_RUNS)
        game, *_ = spectra._components([by_id[r].config for r in ids], by_id[ids[0]].plugins)
        res = spectra.path_angle(game, *_checkpoints(results, game, [by_id[r] for r in ids]))
        for r in range(len(ids)):
            axes[0, j].plot(res["alpha"], res["cosine"][r], lw=1, alpha=0.8)
            axes[1, j].semilogy(res["alpha"], res["norm2"][r], lw=1, alpha=0.8)
        axes[0, j].axhline(0, color="0.6", lw=0.6)
        axes[0, j].set_ylim(-1.05, 1.05)
        axes[0, j].set_title(title, fontsize=8)
        axes[0, j].set_ylabel("cos(ξ, θ₁ − θ₂)", fontsize=8)
        axes[1, j].set_ylabel("‖ξ‖²", fontsize=8)
        axes[1, j].set_xlabel("α (0: start, 1: end)", fontsize=8)
        for ax in axes[:, j]:
            ax.axvline(0, color="0.85", lw=0.6)
            ax.axvline(1, color="0.85", lw=0.6)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{results.study['name']}: path-angle (Berard et al. 2020)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _checkpoints(results: Results, game, runs: list) -> tuple[dict, dict]:
    """The first and last parameters of ``runs`` (study runs, [R, …] per leaf): the recorded
    coordinates where every parameter is recorded, else the initial parameters and the final
    weights kept in the runs table's ``players`` (ValueError when neither is there)."""
    import torch

    from .. import spectra, tree
    from ..init import initial_params

    ids = [r.run_id for r in runs]
    shapes = game.shapes()
    names = [(p, n, s) for p, named in shapes.items() for n, s in named.items()]
    coords = [c for p, n, s in names for c in spectra._coord_names(p, n, s)]
    w = results.trajectories_for(ids, variables=coords).dropna()
    if set(w["variable"].astype(str)) == set(coords):
        w = w.pivot_table(index=["run_id", "step"], columns="variable", values="value",
                          observed=True).reset_index()
        w["run_id"] = w["run_id"].astype(str)
        ends = []
        for pick in ("first", "last"):
            rows = w.groupby("run_id", sort=False).agg(pick).reindex(ids)
            flat = torch.tensor(rows[coords].to_numpy(float), dtype=game.dtype)
            blocks = tree.split(flat, [s for *_, s in names])
            ends.append({p: {n: b.contiguous() for (q, n, _), b in zip(names, blocks) if q == p}
                         for p in shapes})
        return ends[0], ends[1]
    if "players" not in results.runs:
        raise ValueError("the path-angle needs every parameter recorded (small players) or the "
                         "final weights kept (module_gan's save_players)")
    start = initial_params(game, [r.config["init"] for r in runs], [r.config["seed"] for r in runs])
    finals = [results.players(r) for r in ids]
    end = {p: {n: torch.stack([dict(f[p].named_parameters())[n].detach().to(game.dtype)
                               for f in finals]) for n in named} for p, named in shapes.items()}
    return start, end
