"""User modules named in a study's ``plugins:`` list: they register their own games, rules,
optimizers or regularizers when imported, with no edit of gamedyn."""

from __future__ import annotations

import hashlib
import importlib
import sys
import traceback
import types
from pathlib import Path

from .errors import StudyError


def resolve(specs: object, base: Path | None) -> list[str]:
    """Check a ``plugins:`` value and import each entry; returns them as module names or absolute
    file paths (paths relative to the study file's folder)."""
    if not isinstance(specs, list) or not all(isinstance(s, str) and s for s in specs):
        raise StudyError("plugins", f"{specs!r} is not accepted: expected a list of module names or "
                                    f"Python file paths")
    out = []
    for i, spec in enumerate(specs):
        if spec.endswith(".py") or "/" in spec:
            path = Path(spec) if Path(spec).is_absolute() else (base or Path.cwd()) / spec
            if not path.is_file():
                raise StudyError(f"plugins[{i}]", f"{spec!r}: no such file ({path})")
            spec = str(path.resolve())
        try:
            load(spec)
        except Exception as e:  # the user's module failed: say where, in one line
            frame = traceback.extract_tb(e.__traceback__)[-1]
            raise StudyError(f"plugins[{i}]", f"importing {spec!r} failed: {type(e).__name__}: {e} "
                                              f"({Path(frame.filename).name}, line {frame.lineno})") from None
        out.append(spec)
    return out


def load(spec: str, source: str | None = None) -> None:
    """Import a plugin (once per process): a module name, or an absolute path to a Python file —
    whose text may be given as ``source`` (a Dask worker without the study's filesystem)."""
    if not spec.endswith(".py"):
        importlib.import_module(spec)
        return
    name = "gamedyn_plugin_" + hashlib.sha1(spec.encode()).hexdigest()[:12]
    if name in sys.modules:
        return
    module = types.ModuleType(name)
    module.__file__ = spec
    sys.modules[name] = module
    try:
        text = Path(spec).read_text() if source is None else source
        exec(compile(text, spec, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
