"""The one error type a user sees for bad input."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StudyError(ValueError):
    """Bad input at the boundary: names the file, the key path, the bad value and what is accepted.

    The CLI prints ``str(error)`` as one line and exits non-zero; library callers can catch it.
    """

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key, self.message, self.source = key, message, source
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.source}: " if self.source else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def within(self, source: str | None = None, prefix: str | None = None) -> StudyError:
        """The same error, located in a file and/or under a parent key."""
        key = self.key if not prefix else (f"{prefix}.{self.key}" if self.key else prefix)
        return StudyError(key, self.message, source or self.source)


def _suggestion(given: object, accepted: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the accepted name closest to a mistyped ``given`` (difflib's
    ratio ≥ 0.6), else ``""``: a typo in a study file is the commonest bad input."""
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(accepted), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(key: str, what: str, given: object, accepted: Iterable[str],
            listed: str | None = None) -> StudyError:
    """The error for a name none accepts: ``unknown {what}[ (did you mean 'x'?)]; accepted: …`` (the
    accepted names, or ``listed`` where they read better described)."""
    accepted = list(accepted)
    return StudyError(key, f"unknown {what}{_suggestion(given, accepted)}; accepted: "
                           f"{listed or ', '.join(accepted)}")
