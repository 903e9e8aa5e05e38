"""Step one batch of runs together over the run axis, record, and diagnose."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import alignment as aligner
from . import basins, diagnose, fuse, lyapunov, plugins, regularizers, runaxis, spectra, stability, streaming
from .games import GAMES
from .init import initial_params
from .optim import OPTIMIZERS
from .random import Streams
from .record import Recorder, kept
from .rules import RULES, Context
from .rules.context import FieldMemo
from .study import Run, batch_key

#: Records between checks for runs that all stopped (the batch then ends early). Compiled chunks'
#: stage holds as many (``record.STAGE_RECORDS``): change both together.
ALIVE_EVERY = 64


@dataclasses.dataclass
class BatchResult:
    """What a batch sends back: one row per run, and its trajectories as recorded (``records``;
    ``trajectories`` is their long-format table, made when asked for)."""

    batch_id: str
    runs: pd.DataFrame
    records: streaming.Records

    @functools.cached_property
    def trajectories(self) -> pd.DataFrame:
        return self.records.long()


def stability_columns(rho: np.ndarray, growth_rate: np.ndarray, dynamics: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """The local stability prediction beside the observation, so that contradictions are easy to
    find (``runs[~runs.stability_agrees]``):

    - ``predicted_radius`` ρ of the update map's Jacobian at the equilibrium (:mod:`gamedyn.stability`;
      NaN where it does not apply) and ``observed_radius`` = exp(``growth_rate``), the distance's
      factor per step over the late window;
    - ``predicted_dynamics``: converged (ρ < 1 − 10⁻⁶), diverged (ρ > 1 + 10⁻⁶), cycling (between);
    - ``stability_agrees``: the observed ``dynamics`` is the predicted one (for ρ ≈ 1: cycling or
      drifting); NA where there is no prediction. Local: a run started far from the equilibrium of a
      non-linear game may honestly disagree.
    """
    predicted = np.where(rho < 1 - 1e-6, "converged", np.where(rho > 1 + 1e-6, "diverged", "cycling"))
    predicted = np.where(np.isnan(rho), None, predicted).astype(object)
    marginal = (predicted == "cycling") & np.isin(dynamics, ["cycling", "drifting"])
    agrees = pd.array(np.where(np.isnan(rho), None, (predicted == dynamics) | marginal), dtype="boolean")
    return {"predicted_radius": rho, "observed_radius": np.exp(growth_rate),
            "predicted_dynamics": predicted, "stability_agrees": agrees}


def batch_id(runs: list[Run]) -> str:
    """A batch's stable id: a hash of its runs' ids."""
    return hashlib.sha1(",".join(r.run_id for r in runs).encode()).hexdigest()[:12]


def run_batch(runs: list[Run], thresholds: dict[str, float] | None = None,
              threads: int | None = None, device: str = "cpu", compile: str = "auto") -> BatchResult:
    """Build the game, rule and optimizers for ``runs`` (which share structure), step all R runs at
    once for the study's budget, and return their diagnosed results.

    The Python loop is over steps, never over runs; every tensor has the run axis leading. The run
    axis is padded to a multiple of the alignment its operations need (:func:`alignment`) and
    stepped on one or two threads (``threads`` caps it), so that no run's numbers depend on its
    batch-mates (see :mod:`gamedyn.runaxis`).
    """
    for spec in runs[0].plugins:  # a worker process imports the study's plugins itself
        plugins.load(spec)
    align = alignment(runs, device, compile)
    with runaxis.stepping_threads(runaxis.padded_size(len(runs), align), threads):
        return _run_batch(runs, thresholds, device, compile, align)


@dataclasses.dataclass
class _Batch:
    """A batch's components, built for a (padded) list of run configurations."""

    game: Any
    rule: Any
    optimizers: dict[str, Any]
    regularizer: Any
    params: Any
    ctx: Context
    recorder: Recorder


def _build(configs: list[dict[str, Any]], keep: int, device: str, blowup: float) -> _Batch:
    cfg = configs[0]
    dtype = getattr(torch, cfg["dtype"])
    game_configs = [c["game"] for c in configs]
    game = GAMES.get(cfg["game"]["name"]).build(game_configs, dtype, device)
    rule = RULES.get(cfg["rule"]["name"]).build([c["rule"] for c in configs], dtype, device)
    optimizers = {
        p: OPTIMIZERS.get(cfg["optimizer"][p]["name"]).build(
            [c["optimizer"][p] for c in configs], dtype, device)
        for p in game.players
    }
    regularizer = regularizers.build([c["regularizer"] for c in configs], type(game), dtype, device)
    seeds = [c["seed"] for c in configs]
    game.rng = Streams(torch.tensor(seeds, dtype=torch.int64), device=device)
    params = initial_params(game, [c["init"] for c in configs], seeds)
    memo = None if regularizer.changes_losses else FieldMemo()  # a record's field, for the next step
    ctx = Context(game, optimizers, regularizer=regularizer, memo=memo)
    recorder = Recorder(game, len(configs), cfg["steps"], cfg["record_every"], blowup,
                        keep=keep, memo=memo, record=cfg.get("record"),
                        tile=lambda m: type(game).build(game_configs * m, dtype, device))
    return _Batch(game, rule, optimizers, regularizer, params, ctx, recorder)


def alignment(runs: list[Run], device: str = "cpu", compile: str = "auto") -> int | None:
    """The alignment a batch of ``runs`` is padded to: None (:func:`gamedyn.runaxis.run_align`'s
    whole vector block, which needs no knowledge of the step), or, where that padding would waste
    more than an eighth of the work on a game with more than :data:`gamedyn.lyapunov.MAX_PARAMS`
    parameters per run and no known equilibrium (whose stability prediction works on the padded
    axis), stepped eagerly on a CPU without the analyses that run on the padded axis after
    stepping (``lyapunov:``, ``spectra:``), what its operations need (:func:`_needed`, once per
    structure in a process)."""
    n = len(runs)
    cfg = runs[0].config
    if (device != "cpu" or compile == "on" or runaxis.padded_size(n) - n <= n // 8
            or cfg.get("spectra") or cfg.get("lyapunov") not in (None, "off")):
        return None
    need = aligner.for_structure(batch_key(cfg), lambda: _needed(runs, device))
    return need if need is not None and runaxis.padded_size(n, need) < runaxis.padded_size(n) else None


def _needed(runs: list[Run], device: str) -> int | None:
    """:func:`gamedyn.alignment.needed` of a probe batch's first record and step (of
    :func:`gamedyn.alignment.probe_runs` runs), or None for a game that does not qualify
    (:func:`alignment`), told from a game of one run, or whose probe failed."""
    cfg = runs[0].config
    one = GAMES.get(cfg["game"]["name"]).build([cfg["game"]], getattr(torch, cfg["dtype"]), device)
    if one.equilibrium() is not None or one.n_params() <= lyapunov.MAX_PARAMS:
        return None
    n = aligner.probe_runs(len(runs))

    def probe() -> None:
        b = _build([r.config for r in (runs * n)[:n]], n, device, diagnose.DEFAULTS["blowup"])
        with torch.no_grad():
            b.recorder.record(0, b.params)
            state = b.rule.init(b.ctx, b.params)
            with torch.enable_grad():
                b.rule.step(b.ctx, b.params, state)

    try:
        return aligner.needed(probe, n)[0]
    except Exception:  # noqa: BLE001  (the batch itself raises what is its own; else: the whole block)
        return None


def _run_batch(runs: list[Run], thresholds: dict[str, float] | None, device: str, compile: str,
               align: int | None) -> BatchResult:
    th = {**diagnose.DEFAULTS, **(thresholds or {})}
    cfg = runs[0].config
    b = _build([r.config for r in runaxis.pad(runs, align)], len(runs), device, th["blowup"])
    game, rule, optimizers, regularizer, params, ctx, recorder = (
        b.game, b.rule, b.optimizers, b.regularizer, b.params, b.ctx, b.recorder)
    predicted = stability.predict(game, rule, optimizers, regularizer=regularizer,
                                  n_runs=recorder.n_runs)[:len(runs)]
    stepper = fuse.Stepper(rule, ctx, recorder, compile, cfg["steps"], cfg["record_every"],
                           fusable=align is None)

    start = time.perf_counter()
    i, last, check = 0, len(recorder.steps) - 1, ALIVE_EVERY
    with torch.no_grad():
        recorder.record(0, params)
        state = rule.init(ctx, params)
        while i < last:
            params, state, i = stepper.advance(params, state, i, check)
            if i >= check:
                check = i + ALIVE_EVERY
                if not recorder.alive():
                    break
    wall = time.perf_counter() - start
    lyap_cfg = lyapunov.setting(cfg.get("lyapunov"), game, type(rule).work(cfg["rule"]))
    lyap = lyapunov.run_exponents(game, rule, optimizers, params, state, lyap_cfg,  # from the end
                                  regularizer=regularizer)
    result = _collect(runs, recorder, state["counts"], th, wall, recorder.steps[i], predicted, stepper,
                      None if lyap is None else (*(a[:len(runs)] for a in lyap), lyap_cfg["steps"]))
    recorder.release()  # its records are copied out: its memory serves the next batch
    result.runs = result.runs.assign(**spectra.run_columns(  # from the end, as the exponents
        game, rule, optimizers, params, state, cfg.get("spectra"), len(runs), regularizer=regularizer))
    result.runs = result.runs.assign(**game.final_columns(params, len(runs)))  # e.g. final weights
    return result


def _collect(runs: list[Run], recorder: Recorder, counts: dict[str, torch.Tensor], th: dict[str, float],
             wall: float, done: int, predicted: np.ndarray, stepper: fuse.Stepper,
             lyap: tuple[np.ndarray, np.ndarray, int] | None = None) -> BatchResult:
    steps, values, n_valid = recorder.arrays()
    V = recorder.variables
    ncoord = len(recorder.coord_vars)
    if "distance" in V:
        signal = values[:, :, V.index("distance")]
    else:  # distance to stationarity: the norm of the whole field
        gn = [V.index(v) for v in V if v.startswith("grad_norm.")]
        signal = np.sqrt((values[:, :, gn] ** 2).sum(-1))
    stopped = recorder.stop_reason != None  # noqa: E711  (object array)
    labels = diagnose.diagnose(steps, signal, values[:, :, :ncoord], n_valid, stopped, th,
                               complete=recorder.complete)
    labels.update(recorder.game.diagnose_fit(
        steps, {v: values[:, :, i] for i, v in enumerate(V)}, n_valid))

    bid = batch_id(runs)
    stop_step = np.where(stopped, steps[np.minimum(n_valid, len(steps) - 1)], np.nan)
    rows = pd.DataFrame([{"run_id": r.run_id, **r.columns} for r in runs])
    for k, v in labels.items():
        rows[k] = v
    rows = rows.assign(**stability_columns(predicted, labels["growth_rate"], labels["dynamics"]))
    start, last = diagnose.late_window(n_valid, th["late_fraction"])
    rows = rows.assign(**diagnose.lyapunov_columns(
        lyap and lyap[:2], labels["dynamics"], steps[last] - steps[start], th["growth_factor"],
        lyap and lyap[2], labels["period"]))
    rows = rows.assign(**basins.end_columns(  # the attractor ids: at assembly, over the whole study
        steps, signal, values[:, :, :ncoord], n_valid, labels, th["late_fraction"]))
    rows["stopped_step"] = stop_step
    rows["stop_reason"] = recorder.stop_reason
    rows["steps_done"] = done
    for c in ("grad_evals", "hvps"):  # each run's own (the rule state's counters; padding dropped)
        rows[c] = counts[c][:len(runs)].cpu().numpy()
        rows[f"{c}_per_step"] = rows[c] / max(done, 1)
    rows["batch_id"] = bid
    rows["batch_size"] = len(runs)
    rows["wall_time"] = wall / len(runs)
    rows["stepping"] = stepper.kind
    rows["stepping_note"] = stepper.note
    rows["compile_time"] = stepper.compile_seconds

    keep = kept(V, ncoord, runs[0].config.get("record"))   # the study's record: (default: all)
    values = values if len(keep) == len(V) else values[:, :, keep]
    records = streaming.Records([r.run_id for r in runs], steps, n_valid, [V[i] for i in keep],
                                values.astype(runs[0].config.get("trajectory_dtype", "float64"),
                                              copy=False))
    return BatchResult(bid, rows, records)
