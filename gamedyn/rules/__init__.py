"""Update rules: one module each, registered in :data:`RULES` by name (every module here is imported)."""

from ..discover import import_all
from .base import RULES, Rule, State
from .context import Context

import_all(__name__, __path__)

__all__ = ["RULES", "Context", "Rule", "State"]
