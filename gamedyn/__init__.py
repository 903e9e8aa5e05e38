"""gamedyn: does gradient-based training of a non-convex game converge, cycle, diverge or underfit?

Library entry points::

    import gamedyn
    study = gamedyn.load_study("studies/quickstart.yaml")
    results = gamedyn.run_study(study, jobs=2)      # or: gamedyn run studies/quickstart.yaml -j 2
    results = gamedyn.load("results/quickstart")    # .runs, .trajectories, .study
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
#: The public names and their modules, imported on first use (PEP 562): ``gamedyn run`` starts its
#: worker processes before importing torch (:mod:`gamedyn.pool`), and ``gamedyn report`` never needs it.
_EXPORTS = {
    "StudyError": "errors", "GAMES": "games", "Game": "games", "OPTIMIZERS": "optim",
    "Optimizer": "optim", "run_study": "orchestrate", "Results": "results", "load": "results",
    "RULES": "rules", "Context": "rules", "Rule": "rules", "Study": "study",
    "load_study": "study", "make_study": "study",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gamedyn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
