"""Components with declared, validated parameters, and the registries that name them.

Games, update rules and optimizers are *components*: classes that declare their parameters as
``params = {name: Param(...)}``. Declaring them once gives the study-file validation (type, range,
choices, unknown keys), the defaults, the ``gamedyn list`` documentation and the run-axis batching:
a parameter with ``per_run=True`` (a learning rate, a momentum) may differ between the runs of one
batch and reaches the component as a tensor of shape ``[R]``; every other parameter is structural and
runs that differ in it are stepped in different batches. A per-run parameter with ``choices`` (a
game's loss) reaches it as the string when every run of the batch has the same one, else as a
:class:`Choice`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch

from . import tree
from .errors import StudyError, unknown

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "a mapping", object: "a value"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a component.

    ``low``/``high`` bound numbers (``low_open``/``high_open`` make them strict); ``choices`` lists the
    accepted strings; ``per_run`` marks a hyperparameter that may vary inside a batch.
    """

    type: type
    default: Any
    doc: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    per_run: bool = False

    def accepted(self) -> str:
        """What this parameter accepts, in words."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        text = _TYPE_NAMES[self.type]
        if self.low is not None:
            text += f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            sign = "<" if self.high_open else "<="
            text += f"{' and' if self.low is not None else ''} {sign} {self.high:g}"
        return text

    def validate(self, key: str, value: Any) -> Any:
        """The value, coerced to the declared type, or a StudyError naming ``key``."""
        bad = StudyError(key, f"{value!r} is not accepted: expected {self.accepted()}")
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            value = float(value)
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
        elif not isinstance(value, self.type):
            raise bad
        if self.choices is not None and value not in self.choices:
            raise bad
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise bad
        return value


@dataclasses.dataclass(frozen=True)
class Choice:
    """A per-run choice among named alternatives (e.g. each run's GAN loss): ``names`` in order of
    first appearance, ``index`` [R] each run's.

    :meth:`select` computes each alternative for the runs that chose it and picks per run, so a run's
    numbers are those of a batch in which every run made its choice: a pick is exact, the other
    alternatives see safe inputs (:meth:`masked`) and add exact zeros to the gradients.
    """

    names: tuple[str, ...]
    index: torch.Tensor

    @classmethod
    def of(cls, values: list[str], device: str = "cpu") -> str | Choice:
        """The string when all ``values`` are equal, else the choice."""
        names = tuple(dict.fromkeys(values))
        if len(names) == 1:
            return names[0]
        return cls(names, torch.tensor([names.index(v) for v in values], device=device))

    def mask(self, name: str) -> torch.Tensor:
        """[R]: the runs that chose ``name``."""
        return self.index == self.names.index(name)

    @staticmethod
    def masked(mask: torch.Tensor, x: torch.Tensor, safe: float = 0.0) -> torch.Tensor:
        """``x`` [R, …] in the runs of ``mask``, ``safe`` elsewhere: no alternative sees the inputs
        of runs that did not choose it (whose derivatives could be infinite there, and 0 · ∞ is not
        0)."""
        return torch.where(mask.reshape(mask.shape + (1,) * (x.dim() - 1)), x, safe)

    def select(self, compute: Callable[[str, torch.Tensor], Any]) -> Any:
        """``compute(name, mask)`` (a tensor or a tree of tensors with the run axis leading) of each
        alternative, picked per run."""
        out = None
        for name in self.names:
            mask = self.mask(name)
            part = compute(name, mask)
            out = part if out is None else tree.where(mask, part, out)
        return out


class Component:
    """A class configured by declared parameters; instances expose them as attributes.

    Build one with ``Cls.build([config, ...], dtype)`` for a batch of runs: structural parameters
    come from the first config (they are equal across a batch), ``per_run`` ones are stacked into a
    tensor of shape ``[R]``.
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **values: Any) -> None:
        for key, param in self.params.items():
            setattr(self, key, values.get(key, param.default))

    @classmethod
    def resolve(cls, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Validate a mapping of parameter values and fill in defaults (no grid lists here)."""
        extra = sorted(set(given) - set(cls.params))
        if extra:
            raise unknown(f"{where}.{extra[0]}", f"parameter of {cls.name!r}", extra[0], cls.params,
                          None if cls.params else "no parameters")
        out = {}
        for key, param in cls.params.items():
            out[key] = param.validate(f"{where}.{key}", given[key]) if key in given else param.default
        return out

    @classmethod
    def build(cls, configs: list[Mapping[str, Any]], dtype: torch.dtype, device: str = "cpu"):
        """An instance for a batch of R runs, ``configs`` holding each run's resolved parameters."""
        values: dict[str, Any] = {}
        for key, param in cls.params.items():
            if param.per_run and param.choices is not None:
                values[key] = Choice.of([c[key] for c in configs], device)
            elif param.per_run:
                values[key] = torch.tensor([c[key] for c in configs], dtype=dtype, device=device)
            else:
                values[key] = configs[0][key]
        obj = cls(**values)
        obj.setup(dtype, device)
        return obj

    def setup(self, dtype: torch.dtype, device: str) -> None:
        """Hook: make the tensors the component needs (a game's matrix, say). Default: none."""
        self.dtype, self.device = dtype, device

    @classmethod
    def structural(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters that must agree for runs to share a batch."""
        return {k: v for k, v in config.items() if k not in cls.params or not cls.params[k].per_run}

    @classmethod
    def label_value(cls, key: str, value: Any) -> str:
        """How a parameter's value reads in the component's label (``alternating(disc_steps=5)``)."""
        return str(value)

    @classmethod
    def describe(cls) -> str:
        """Name, first docstring line and parameters, for ``gamedyn list``."""
        doc = (cls.__doc__ or "").strip().splitlines()
        lines = [f"  {cls.name}: {doc[0] if doc else ''}"]
        for key, p in cls.params.items():
            extra = " (may differ per run)" if p.per_run else ""
            lines.append(f"      {key} = {p.default!r}  [{p.accepted()}]{extra}  {p.doc}".rstrip())
        return "\n".join(lines)


class Registry:
    """Names -> component classes, for one kind of component (game, rule, optimizer)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[Component]] = {}

    def register(self, name: str) -> Callable[[type[Component]], type[Component]]:
        """Class decorator: ``@RULES.register("extragradient")``."""

        def deco(cls: type[Component]) -> type[Component]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.name = name
            self._classes[name] = cls
            return cls

        return deco

    def get(self, name: Any, key: str = "") -> type[Component]:
        """The class registered under ``name``, or a StudyError listing the accepted names."""
        if not isinstance(name, str) or name not in self._classes:
            raise unknown(key or self.kind, f"{self.kind} {name!r}", name, sorted(self._classes))
        return self._classes[name]

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __iter__(self) -> Iterable[type[Component]]:
        return iter(self._classes[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._classes
