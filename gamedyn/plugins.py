"""User modules named in a study's ``plugins:`` list: they register their own games, rules,
optimizers or regularizers when imported, with no edit of gamedyn."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

from .errors import StudyError

#: The folder of the study file being validated: files a study names (plugins, a game's modules or
#: data) are relative to it.
_STUDY_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("gamedyn_study_dir", default=None)


@contextlib.contextmanager
def study_dir(base: Path | None) -> Iterator[None]:
    """Resolve relative file names (:func:`file_path`) against ``base`` (None: the working folder)."""
    token = _STUDY_DIR.set(base)
    try:
        yield
    finally:
        _STUDY_DIR.reset(token)


def is_file(spec: str) -> bool:
    """Whether a plugin spec names a Python file (else an importable module name)."""
    return spec.endswith(".py") or "/" in spec


def file_path(spec: str, key: str, base: Path | None = None) -> str:
    """The absolute path of a file a study names, relative to ``base`` (default: the folder of the
    study being validated, :func:`study_dir`, or the working folder); a StudyError naming ``key``
    when there is no such file."""
    base = base or _STUDY_DIR.get() or Path.cwd()
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    if not path.is_file():
        raise StudyError(key, f"{spec!r}: no such file ({path})")
    return str(path.resolve())


def module(spec: str) -> types.ModuleType:
    """The module a resolved plugin spec names (a module name or an absolute ``.py`` path), imported
    once per process by :func:`load`."""
    load(spec)
    return sys.modules[_name(spec) if spec.endswith(".py") else spec]


def _name(path: str) -> str:
    return "gamedyn_plugin_" + hashlib.sha1(path.encode()).hexdigest()[:12]


def resolve(specs: object, base: Path | None) -> list[str]:
    """Check a ``plugins:`` value and import each entry; returns them as module names or absolute
    file paths (paths relative to the study file's folder)."""
    if not isinstance(specs, list) or not all(isinstance(s, str) and s for s in specs):
        raise StudyError("plugins", f"{specs!r} is not accepted: expected a list of module names or "
                                    f"Python file paths")
    out = []
    for i, spec in enumerate(specs):
        if is_file(spec):
            spec = file_path(spec, f"plugins[{i}]", base)
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
    name = _name(spec)
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
