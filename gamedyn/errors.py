"""The one error type a user sees for bad input."""

from __future__ import annotations


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
