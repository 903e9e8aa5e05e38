"""gamedyn: does gradient-based training of a non-convex game converge, cycle, diverge or underfit?

Library entry points::

    import gamedyn
    study = gamedyn.load_study("studies/quickstart.yaml")
    results = gamedyn.run_study(study, jobs=2)      # or: gamedyn run studies/quickstart.yaml -j 2
    results = gamedyn.load("results/quickstart")    # .runs, .trajectories, .study
"""

from .errors import StudyError
from .games import GAMES, Game
from .optim import OPTIMIZERS, Optimizer
from .orchestrate import run_study
from .results import Results, load
from .rules import RULES, Context, Rule
from .study import Study, load_study, make_study

__version__ = "0.1.0"
__all__ = [
    "GAMES", "OPTIMIZERS", "RULES", "Context", "Game", "Optimizer", "Results", "Rule", "Study",
    "StudyError", "load", "load_study", "make_study", "run_study",
]
