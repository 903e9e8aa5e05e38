"""Import every module of a package, so that each file registers its components by itself."""

from __future__ import annotations

import importlib
import pkgutil


def import_all(package: str, path: list[str]) -> None:
    """Import ``package.<module>`` for each module under ``path`` ."""
    for info in pkgutil.iter_modules(path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
