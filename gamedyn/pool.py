"""The local worker processes (loky), started early and shared by the batches of a study.

A worker is a fresh Python that imports torch and gamedyn: about 1.5 s of a core before it can step
a batch. ``gamedyn run -j N`` therefore starts N − 1 of them (:func:`prestart`) before it imports
torch itself, so that they boot on the other cores while the command reads the study; the batches
then go to the same processes (:func:`executor`). This module imports neither torch nor the rest
of gamedyn, so that starting the workers costs the command nothing.
"""

from __future__ import annotations

import gc
import os
import sys
from concurrent.futures import Future, wait
from typing import Any

#: Seconds an idle worker waits for work before it exits (joblib's default).
IDLE_TIMEOUT = 300


def workers_for(jobs: int) -> int:
    """The processes ``-j jobs`` asks for: ``jobs``, or one per core for -1."""
    return (os.cpu_count() or 1) if jobs == -1 else jobs


def cores_for(jobs: int) -> int:
    """The processes ``-j jobs`` can run at once on this machine: :func:`workers_for`, at most
    one per core."""
    return min(workers_for(jobs), os.cpu_count() or 1)


def executor(workers: int) -> Any:
    """loky's reusable executor with at least ``workers`` processes (the one started, if it has
    as many; a larger one otherwise, once the started workers have finished importing: loky
    resizes an executor only when it is idle)."""
    from joblib.externals.loky import get_reusable_executor

    _quiet_tracker()
    if _warming and _started >= workers:
        workers = _started
    else:
        wait(_warming)
    return get_reusable_executor(max_workers=workers, timeout=IDLE_TIMEOUT,
                                 initializer=_no_leak_restarts)


#: The module whose warnings loky's resource tracker writes to the command's stderr.
TRACKER = "joblib.externals.loky.backend.resource_tracker"


def _quiet_tracker() -> None:
    """Start loky's resource tracker (a process of its own, writing to this one's stderr) with its
    warnings ignored. When a worker dies holding one of the executor's semaphores (killed by the
    system for memory, say), the tracker warns at the command's exit that it "appears to have
    leaked" and unlinks it: a worker lost is gamedyn's own one-line error
    (:mod:`gamedyn.orchestrate`), which the tracker's lines would follow like a traceback. The
    tracker is started with the ``-W`` options in ``sys.warnoptions``; the filter is there only
    while it starts (a tracker already running is kept)."""
    from joblib.externals.loky.backend import resource_tracker

    option = f"ignore::UserWarning:{TRACKER}"
    sys.warnoptions.append(option)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(option)


def _no_leak_restarts() -> None:
    """In a worker, at its start: no restart for growing memory. loky restarts a worker whose
    resident size grew by 300 MB since its first task (the import, here), with a warning to the
    user that a worker stopped; a worker that steps a batch of up to ``memory_budget`` MiB and
    keeps torch's allocator pages and kernels grows by more, by design, and a restart only costs
    another import. Memory per batch is gamedyn's own budget (:mod:`gamedyn.memory`)."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = 1 << 62


def warm() -> int:
    """In a worker: import what stepping a batch needs; returns the worker's pid. The cyclic
    garbage collector is paused while it imports, and what the imports made is then frozen out of
    its generations (as the command does: ``gamedyn.cli._imported``)."""
    gc.disable()
    try:
        import gamedyn.batch  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()
    return os.getpid()


_warming: list[Future] = []
_started = 0


def prestart(workers: int) -> None:
    """Start ``workers`` processes now, each importing gamedyn's stepping code (no-op for 0)."""
    global _started
    if workers > 0 and not _warming:
        ex = executor(workers)
        _warming.extend(ex.submit(warm) for _ in range(workers))
        _started = workers


def ready() -> bool:
    """Whether the started workers have finished importing (True when none were started)."""
    return all(f.done() for f in _warming)


def stop() -> None:
    """Stop the workers now: kill them (the command is done with them, and a worker's interpreter
    would take about a second to tear torch down) and wait until they are gone, so that none
    outlives the command holding its output."""
    from joblib.externals.loky.reusable_executor import _executor

    if _executor is not None:
        _executor.shutdown(wait=True, kill_workers=True)
    _warming.clear()
