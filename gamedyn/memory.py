"""The memory budget of a batch: how many runs one batch may hold so that stepping, recording and
writing it stays within ``memory_budget``.

A batch's memory grows with its number of recorded values, R runs × T records × V variables: the
recorder's ``[T, V, R]`` array, its float64 copy, the long-format trajectories DataFrame (one row per
value: run code, step, variable code, value) with the temporaries that build it, and pyarrow's copy
when the part file is written. Measured on the bilinear game (torch 2.13 CPU, pandas 3.1, pyarrow
26, 4,000 and 16,000 runs × 101 records × 7 variables), the peak resident memory of ``run_batch``
plus ``ResultsFolder.write_part`` above the process's imports is 61–77 bytes per recorded value; the
estimate takes :data:`BYTES_PER_VALUE` = 96 bytes (a margin for other games' temporaries) plus
:data:`BYTES_PER_RUN` for each run's row, parameters and optimizer state. T is exact (step 0, every
``record_every`` steps and the last step); V is the exact number of variables the recorder writes
for the batch's game, found by recording step 0 of one run of it (cached per game configuration).

The budget is per batch, that is per worker process: with ``-j N``, up to N batches are in memory
at once. It does not count the process's fixed cost (Python, torch and the study's run
configurations, about 300 MiB for a toy game). A batch holds at least one run, even one that does
not fit.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from . import runaxis
from .errors import StudyError

#: Bytes of peak memory per recorded value (run × record × variable), measured (see above) and rounded up.
BYTES_PER_VALUE = 96
#: Bytes per run besides its recorded values: its row of the runs table, parameters, optimizer state.
BYTES_PER_RUN = 4096
#: The default ``memory_budget`` in MiB.
DEFAULT_BUDGET = 2048
#: Variables assumed for a game whose probe raises (its batches will fail and say why).
FALLBACK_VARIABLES = 64
ACCEPTED = "a number of MiB (an integer >= 1) or a string such as '512MiB', '2GiB' or '1.5GiB'"
_UNITS = {"kib": 1 / 1024, "mib": 1, "gib": 1024, "tib": 1024 ** 2}


def parse_budget(value: Any, key: str = "memory_budget") -> int:
    """A memory budget in MiB from an integer (MiB) or a string with a unit (``KiB``, ``MiB``,
    ``GiB``, ``TiB``; a bare number is MiB); anything else, or less than 1 MiB, is a StudyError
    naming ``key``, the value and what is accepted."""
    mib: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mib = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]ib)?\s*", value.lower())
        if m:
            mib = float(m.group(1)) * _UNITS[m.group(2) or "mib"]
    if mib is None or not math.isfinite(mib) or mib < 1:
        raise StudyError(key, f"{value!r} is not accepted: expected {ACCEPTED}")
    return int(mib)


def records(config: dict[str, Any]) -> int:
    """T, the records of a run: step 0, every ``record_every`` steps, and the last step."""
    steps, every = config["steps"], config["record_every"]
    return steps // every + 1 + (1 if steps % every else 0)


def run_bytes(config: dict[str, Any]) -> int:
    """The estimated peak bytes one run of this configuration adds to its batch."""
    return records(config) * variables(config) * BYTES_PER_VALUE + BYTES_PER_RUN


def batch_size(config: dict[str, Any], max_batch: int, budget_mib: int) -> int:
    """The most runs of this configuration's structure one batch may hold: ``max_batch``, or fewer
    where ``budget_mib`` MiB do not fit that many (at least one; a multiple of
    :data:`gamedyn.runaxis.RUN_ALIGN` where that many fit, since batches are padded to one)."""
    fits = budget_mib * 2 ** 20 // run_bytes(config)
    return max(1, min(max_batch, runaxis.aligned_batch(fits)))


def variables(config: dict[str, Any]) -> int:
    """V, the number of variables the recorder computes for a run of this configuration (all of
    them, whatever ``record:`` keeps: the recorder holds them all)."""
    names = variable_names(config)
    return FALLBACK_VARIABLES if names is None else len(names[0])


def variable_names(config: dict[str, Any]) -> tuple[list[str], int] | None:
    """The variables the recorder computes for a run of this configuration, in order, and how many
    of them are the parameters' coordinates (or norms), which come first; None when the game raises
    (its batch will, and say why)."""
    key = {k: config[k] for k in ("game", "init", "seed", "dtype")}
    return _probe(json.dumps(key, sort_keys=True, default=str))


@functools.cache
def _probe(frozen: str) -> tuple[list[str], int] | None:
    """Record step 0 of one run of the game (cheap: one evaluation of its losses, gradients and
    metrics) and name the variables. A game that raises here raises in its batch too, where the
    failure is recorded; the estimate then assumes FALLBACK_VARIABLES."""
    import torch

    from .games import GAMES
    from .init import initial_params
    from .random import Streams
    from .record import Recorder

    config = json.loads(frozen)
    try:
        game = GAMES.get(config["game"]["name"]).build([config["game"]], getattr(torch, config["dtype"]),
                                                       "cpu")
        seed = config["seed"]
        game.rng = Streams(torch.tensor([seed], dtype=torch.int64), device="cpu")
        params = initial_params(game, [config["init"]], [seed])
        recorder = Recorder(game, 1, 1, 1, math.inf)
        with torch.no_grad():
            recorder.record(0, params)
        return list(recorder.variables), len(recorder.coord_vars)
    except Exception:  # the batch itself will fail with this error and record it
        return None
