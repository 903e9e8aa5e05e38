"""Initial points: one random stream per run, explicit values where the study gives them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .games.base import Game, Params


def initial_params(game: Game, inits: list[dict[str, Any]], seeds: list[int]) -> Params:
    """Each run's initial parameters, shape ``[R, *shape]``.

    Run r draws from its own stream, ``numpy.random.default_rng(seed_r)``: first a standard normal
    array, then a uniform one, for every parameter in the game's order. ``dist: normal`` scales the
    normal draw, ``uniform`` maps the uniform draw to [−scale, scale], ``constant`` fills with
    ``scale``; explicit values replace the draw (the draw still happens, so fixing one parameter
    leaves the others' values as they were). A game that initialises itself
    (:meth:`~gamedyn.games.base.Game.init_params` not None) ignores ``dist`` and ``scale``; explicit
    values still apply. Hence a run's start depends only on its seed and its own
    init spec — not on its batch-mates, the worker count, the learning rate or the rule.
    """
    shapes = game.shapes()
    own = game.init_params(list(seeds))
    if own is not None:  # the game's own scheme (neural players); dist and scale do not apply
        return _explicit(game, own, inits)
    unique, index = np.unique(np.asarray(seeds, dtype=np.int64), return_inverse=True)
    per_seed = []
    for s in unique:
        rng = np.random.default_rng(int(s))
        normal = {(p, n): rng.standard_normal(shape) for p in shapes for n, shape in shapes[p].items()}
        uniform = {(p, n): rng.uniform(-1.0, 1.0, shape) for p in shapes for n, shape in shapes[p].items()}
        per_seed.append((normal, uniform))
    dist = np.array([i["dist"] for i in inits])
    scale = np.array([i["scale"] for i in inits], dtype=float)
    out: Params = {}
    for player, named in shapes.items():
        out[player] = {}
        for name, shape in named.items():
            normal = np.stack([per_seed[j][0][(player, name)] for j in range(len(unique))])[index]
            uniform = np.stack([per_seed[j][1][(player, name)] for j in range(len(unique))])[index]
            s = scale.reshape((-1,) + (1,) * len(shape))
            d = dist.reshape((-1,) + (1,) * len(shape))
            value = np.where(d == "normal", s * normal, np.where(d == "uniform", s * uniform, s))
            value = np.broadcast_to(value, (len(inits),) + tuple(shape)).copy()
            for r, spec in enumerate(inits):
                if name in spec.get(player, {}):
                    value[r] = np.broadcast_to(np.asarray(spec[player][name], dtype=float), shape)
            out[player][name] = torch.as_tensor(value, dtype=game.dtype, device=game.device)
    return out


def _explicit(game: Game, params: Params, inits: list[dict[str, Any]]) -> Params:
    """``params`` with the explicit values of each run's init spec written in."""
    out: Params = {}
    for player, named in params.items():
        out[player] = {}
        for name, value in named.items():
            given = [(r, spec[player][name]) for r, spec in enumerate(inits) if name in spec.get(player, {})]
            if given:
                value = value.clone()
                for r, v in given:
                    v = np.broadcast_to(np.asarray(v, dtype=float), value.shape[1:]).copy()
                    value[r] = torch.as_tensor(v, dtype=value.dtype, device=value.device)
            out[player][name] = value
    return out


#: The keys of an initialisation that lays its starts out over chosen coordinates (basins of
#: attraction, :mod:`gamedyn.basins`): a regular grid, or a quasi-random Sobol sample.
LAYOUTS = ("grid", "sobol")
LAYOUT_ACCEPTED = {
    "grid": "a mapping of coordinates (player.parameter) to [low, high, points], points an integer "
            ">= 2, e.g. {gen.theta: [-2, 2, 101], disc.psi: [-2, 2, 101]}",
    "sobol": "a mapping of coordinates (player.parameter) to [low, high] and n: the number of "
             "starts (an integer >= 1), e.g. {gen.theta: [-2, 2], disc.psi: [-2, 2], n: 1024}",
}


def _clean(v: float) -> float:
    """``v`` to 12 significant digits (``-1.96``, not ``-1.9600000000000002``, in the columns)."""
    return float(f"{v:.12g}")


def start_points(layout: str, spec: Any, key: str, players: tuple[str, ...] = ("gen", "disc")
                 ) -> list[dict[str, dict[str, float]]]:
    """The starts of an ``init: {grid: ...}`` or ``init: {sobol: ...}`` (``layout``), each as
    explicit values ``{player: {parameter: value}}`` over the chosen coordinates, ``player`` one of
    ``players`` (the names the study file uses for the game: :func:`gamedyn.players.names`).

    ``grid``: the product of ``numpy.linspace(low, high, points)`` over the coordinates, the first
    coordinate varying slowest. ``sobol``: the first ``n`` points of Owen-scrambled Sobol' sequence
    (``scipy.stats.qmc.Sobol``, scrambled with seed 0, so always the same points; a power of 2 keeps
    the sequence's balance, Owen 1998) in [0, 1)ᵈ mapped affinely to the box ∏ [lowᵢ, highᵢ).
    Values are kept to 12 significant digits. Bad input raises a :class:`StudyError` naming
    ``key`` (e.g. ``init.grid.gen.theta``), the value and what is accepted.
    """
    from .errors import StudyError

    accepted = LAYOUT_ACCEPTED[layout]
    if not isinstance(spec, dict) or not spec:
        raise StudyError(f"{key}.{layout}", f"{spec!r} is not accepted: expected {accepted}")
    n = None
    if layout == "sobol":
        n = spec.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise StudyError(f"{key}.sobol.n", f"{n!r} is not accepted: expected an integer >= 1 "
                                               f"(the number of starts)")
    coords, axes = [], []
    for coord, value in spec.items():
        if layout == "sobol" and coord == "n":
            continue
        where = f"{key}.{layout}.{coord}"
        parts = coord.split(".") if isinstance(coord, str) else []
        if len(parts) != 2 or parts[0] not in players or not parts[1]:
            raise StudyError(where, f"{coord!r} is not a coordinate: expected player.parameter "
                                    f"with player one of {', '.join(players)} (e.g. {players[0]}.x)")
        size = 3 if layout == "grid" else 2
        ok = isinstance(value, list) and len(value) == size and all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value)
        ok = ok and value[0] < value[1]
        if ok and layout == "grid":
            ok = isinstance(value[2], int) and value[2] >= 2
        if not ok:
            raise StudyError(where, f"{value!r} is not accepted: expected "
                                    + ("[low, high, points] with low < high and points an integer "
                                       ">= 2" if layout == "grid" else "[low, high] with low < high"))
        coords.append((parts[0], parts[1]))
        axes.append(value)
    if not coords:
        raise StudyError(f"{key}.{layout}", f"no coordinates given: expected {accepted}")
    if layout == "grid":
        grids = np.meshgrid(*[np.linspace(lo, hi, int(k)) for lo, hi, k in axes], indexing="ij")
        points = np.stack([g.reshape(-1) for g in grids], 1)
    else:
        import warnings

        from scipy.stats import qmc

        with warnings.catch_warnings():   # a count that is not a power of 2 is the user's choice
            warnings.simplefilter("ignore", UserWarning)
            try:
                sobol = qmc.Sobol(d=len(coords), scramble=True, rng=0)
            except TypeError:   # scipy < 1.15 names it seed
                sobol = qmc.Sobol(d=len(coords), scramble=True, seed=0)
            unit = sobol.random(n)
        lo, hi = np.array([a[0] for a in axes], float), np.array([a[1] for a in axes], float)
        points = lo + unit * (hi - lo)
    out = []
    for row in points:
        start: dict[str, dict[str, float]] = {p: {} for p in players}
        for (player, name), v in zip(coords, row):
            start[player][name] = _clean(v)
        out.append(start)
    return out
