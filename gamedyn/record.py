"""The recorder: every ``record_every`` steps, what a convergence study looks at, for all runs at once."""

from __future__ import annotations

import math

import numpy as np
import torch

from .games.base import Game, Params
from .rules.context import Context

#: A player with at most this many coordinates per run has each one recorded; a larger one, its norms.
MAX_COORDS = 16


def _coord_names(player: str, name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [f"{player}.{name}"]
    return [f"{player}.{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]


class Recorder:
    """Records, at step 0, every ``record_every`` steps and the last step, per run:

    - each player's parameters: every coordinate (``gen.theta``, ``gen.x[0]``) for small players,
      otherwise each parameter tensor's norm (``norm.gen.w``);
    - ``loss.<player>`` and ``grad_norm.<player>`` (norm of the player's own gradient);
    - ``distance`` to the equilibrium when the game knows one;
    - whatever the game's :meth:`~gamedyn.games.base.Game.metrics` returns (fit metrics, …).

    A run whose recorded values (metrics aside: a metric may be undefined, NaN) are not all finite,
    or whose distance exceeds
    ``blowup`` × max(1, d_0), is *stopped*: its later records are discarded and it is labelled
    ``diverged`` by :mod:`gamedyn.diagnose`. The others go on unaffected.
    """

    def __init__(self, game: Game, n_runs: int, steps: int, record_every: int, blowup: float):
        self.game = game
        self.ctx = Context(game, {})  # its own counters: recording is not charged to the rule
        self.rng = game.rng.fork(1) if game.rng is not None else None  # apart from training noise
        self.eq = game.equilibrium()
        self.steps = sorted(set(range(0, steps + 1, record_every)) | {steps})
        self._index = {s: i for i, s in enumerate(self.steps)}
        self._small = {p: sum(math.prod(s) for s in named.values()) <= MAX_COORDS
                       for p, named in game.shapes().items()}
        self.coord_vars = [
            n for p, named in game.shapes().items() for name, shape in named.items()
            for n in (_coord_names(p, name, shape) if self._small[p] else [f"norm.{p}.{name}"])]
        self.variables: list[str] = []
        self.values: torch.Tensor | None = None  # [T, R, V], allocated at the first record
        self.n_runs = n_runs
        self.n_valid = np.zeros(n_runs, dtype=np.int64)
        self.alive_runs = np.ones(n_runs, dtype=bool)
        self._judged = self._stored = 0
        self.stop_reason = np.full(n_runs, None, dtype=object)
        self.blowup = blowup
        self._scale = None

    def columns(self, params: Params) -> dict[str, torch.Tensor]:
        """Every recorded variable at ``params``, each [R, k] (k coordinates) or [R]: pure tensor
        code (no bookkeeping), so that :mod:`gamedyn.fuse` can compile it with the steps."""
        R = self.n_runs
        cols: dict[str, torch.Tensor] = {}
        for player, named in params.items():
            for name, p in named.items():
                flat = p.detach().reshape(R, -1)
                key = f"{player}.{name}"
                cols[key] = flat if self._small[player] else flat.norm(dim=1)
        with torch.enable_grad(), self.game.using(self.rng):
            detached = {pl: {k: v.detach() for k, v in named.items()} for pl, named in params.items()}
            losses = self.game.losses(detached)
            grads = self.ctx.grad(params)
            metrics = self.game.metrics(detached)
        for p in params:
            cols[f"loss.{p}"] = losses[p].detach()
        for p in params:
            cols[f"grad_norm.{p}"] = torch.sqrt(sum((g.reshape(R, -1) ** 2).sum(1)
                                                    for g in grads[p].values()))
        if self.eq is not None:
            cols["distance"] = torch.sqrt(sum(
                ((params[pl][k].detach() - self.eq[pl][k]).reshape(R, -1) ** 2).sum(1)
                for pl in params for k in params[pl]))
        for name, value in metrics.items():
            cols[f"metric:{name}"] = value.detach()
        return cols

    def row(self, params: Params) -> torch.Tensor:
        """The record at ``params`` as one [R, V] tensor (V = ``len(self.variables)``)."""
        return self._cat(self.columns(params))

    def _cat(self, cols: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([c.reshape(self.n_runs, -1).to(self.game.dtype) for c in cols.values()], 1)

    def record(self, step: int, params: Params) -> None:
        """Record ``params`` at ``step`` (eagerly; the first record names the variables)."""
        cols = self.columns(params)
        if self.values is None:
            n_params = sum(len(named) for named in params.values())  # the first entries of cols
            names = list(cols)[n_params:]
            self.variables = self.coord_vars + [n.removeprefix("metric:") for n in names]
            self._metric_width = sum(c.reshape(self.n_runs, -1).shape[1]
                                     for n, c in cols.items() if n.startswith("metric:"))
            self._size_col = (self.variables.index("distance") if self.eq is not None else None)
            self.values = torch.full((len(self.steps), self.n_runs, len(self.variables)), math.nan,
                                     dtype=self.game.dtype)
        self.store(step, self._cat(cols))

    def store(self, step: int, row: torch.Tensor) -> None:
        """Keep a record computed elsewhere (a compiled chunk's). Whether runs stopped is judged
        later, for many records at once (:meth:`alive`), to keep the per-record cost to one copy."""
        i = self._index[step]
        self.values[i] = row
        self._stored = i + 1

    def alive(self) -> bool:
        """Judge the records stored since the last call and say whether any run is still alive.

        A run stops at its first record whose core values (metrics aside) are not all finite, or
        whose size (distance to the equilibrium, else its largest coordinate) exceeds ``blowup`` ×
        max(1, size at step 0); that record and the later ones are discarded."""
        lo, hi = self._judged, self._stored
        if hi <= lo:
            return bool(self.alive_runs.any())
        block = self.values[lo:hi].numpy()                                   # [t, R, V] (a view)
        n_core = block.shape[2] - self._metric_width
        finite = np.isfinite(block[:, :, :n_core]).all(2)                    # [t, R]
        size = (block[:, :, self._size_col] if self._size_col is not None
                else np.abs(block[:, :, : len(self.coord_vars)]).max(2))
        if self._scale is None:
            self._scale = np.maximum(size[0], 1.0)
        with np.errstate(invalid="ignore"):
            bad = ~finite | (size > self.blowup * self._scale)                 # NaN size: not blown
        bad &= self.alive_runs[None, :]
        hit = bad.any(0)
        first = np.where(hit, bad.argmax(0), hi - lo)                        # first bad record
        self.n_valid = np.where(self.alive_runs, lo + first, self.n_valid)
        reason = ~finite[np.minimum(first, hi - lo - 1), np.arange(len(first))]
        self.stop_reason[hit] = np.where(reason[hit], "nonfinite", "blowup")
        self.alive_runs &= ~hit
        self._judged = hi
        return bool(self.alive_runs.any())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps [T], values [R, T, V] with NaN past each run's stop, n_valid [R])."""
        self.alive()
        values = self.values.transpose(0, 1).numpy().astype(float, copy=True)
        n_valid = self.n_valid
        values[np.arange(values.shape[1])[None, :] >= n_valid[:, None]] = np.nan
        return np.asarray(self.steps, dtype=np.int64), values, n_valid
