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
