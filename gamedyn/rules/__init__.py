"""Update rules, one module each, registered in :data:`RULES` by name."""

from . import alternating, simultaneous  # noqa: F401  (registers the rules)
from .base import RULES, Rule, State
from .context import Context

__all__ = ["RULES", "Context", "Rule", "State"]
