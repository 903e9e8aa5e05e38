"""User modules named in a study's ``plugins:`` list: they register their own games, rules,
optimizers or regularizers when imported, with no edit of gamedyn."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import importlib
import os
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import StudyError

#: The folder of the study file being validated: files a study names (plugins, a game's modules or
#: data) are relative to it.
_STUDY_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("gamedyn_study_dir", default=None)
#: The files resolved while validating the current study: absolute path → (the path as written,
#: normalised; the file's content digest). See :func:`portable`.
_NAMED: contextvars.ContextVar[dict[str, tuple[str, str]] | None] = contextvars.ContextVar(
    "gamedyn_named_files", default=None)


@contextlib.contextmanager
def study_dir(base: Path | None) -> Iterator[dict[str, tuple[str, str]]]:
    """Resolve relative file names (:func:`file_path`) against ``base`` (None: the working folder);
    yields the files resolved inside, ``{absolute path: (path as written, content digest)}``, for
    :func:`portable`."""
    named: dict[str, tuple[str, str]] = {}
    token, token_named = _STUDY_DIR.set(base), _NAMED.set(named)
    try:
        yield named
    finally:
        _STUDY_DIR.reset(token)
        _NAMED.reset(token_named)


def portable(obj: Any, named: dict[str, tuple[str, str]]) -> tuple[Any, dict[str, str]]:
    """A configuration with every file resolved by :func:`file_path` (an absolute path, needed to
    load it) put back as written in the study, relative to the study file (normalised:
    ``./a/../b.py`` → ``b.py``), and the digests of those files' contents ``{written: sha1}``.

    Run ids hash this, not the absolute paths: the same study in another folder or clone has the
    same ids (resume works), while editing a network or data file the study names changes them (its
    old results are not reused)."""
    if not named:  # no file named: nothing to put back (most studies; 10,000 runs walk twice)
        return obj, {}
    digests: dict[str, str] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        if isinstance(v, str) and v in named:
            written, digest = named[v]
            digests[written] = digest
            return written
        return v

    return walk(obj), digests


@functools.cache
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


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
    resolved = str(path.resolve())
    named = _NAMED.get()
    if named is not None:
        st = path.stat()
        named[resolved] = (os.path.normpath(spec), _digest(resolved, st.st_mtime_ns, st.st_size))
    return resolved


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
