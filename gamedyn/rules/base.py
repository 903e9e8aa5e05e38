"""The update-rule interface, its cost counters, and the capabilities a rule declares."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from .. import tree
from ..component import Component, Registry
from ..games.base import Params
from ..players import roles
from .context import Context

RULES = Registry("rule")
State = dict[str, Any]
Counts = dict[str, torch.Tensor]
#: The cost counters every rule state carries in ``state["counts"]`` (int64 ``[R]`` each).
COUNTERS = ("grad_evals", "hvps")


def zero_counts(params: Params) -> Counts:
    """Fresh counters for ``params``' runs: ``{"grad_evals": 0, "hvps": 0}`` as int64 ``[R]``."""
    like = tree.first(params)
    return {c: torch.zeros(like.shape[0], dtype=torch.int64, device=like.device) for c in COUNTERS}


def count(counts: Counts, grad_evals: int | torch.Tensor = 0, hvps: int | torch.Tensor = 0) -> Counts:
    """``counts`` advanced by the work a step (or ``init``) did, per run: ``grad_evals`` field
    evaluations and ``hvps`` Hessian-vector products, each an int (every run did the same) or an
    integer tensor ``[R]`` (what each run did, e.g. its own number of inner iterations). Pure:
    ``counts`` is not modified (a counter advanced by the int 0 is the same tensor: no operation)."""
    def add(c: torch.Tensor, n: int | torch.Tensor) -> torch.Tensor:
        return c if isinstance(n, int) and n == 0 else c + n

    return {"grad_evals": add(counts["grad_evals"], grad_evals), "hvps": add(counts["hvps"], hvps)}


def past_field_state(ctx: Context, params: Params) -> State:
    """The initial state of a rule that steps with the previous field (``optimistic``,
    ``past_extragradient``): its optimizers' states and ``prev`` = ξ(z_0), the field at the initial
    point (never zeros: the first step is then a plain gradient step), one evaluation counted."""
    prev = ctx.grad(params)  # first, as each rule did (a stochastic game draws here)
    return {"opt": ctx.init_optimizers(params), "prev": prev,
            "counts": count(zero_counts(params), grad_evals=1)}


def _dispatching(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``init`` or ``step`` of a rule that declares ``needs``: on a game without one of those
    players, the rule's ``fallback`` does the work instead."""

    @functools.wraps(fn)
    def method(self: Rule, ctx: Context, *args: Any) -> Any:
        if self.needs and self.missing(ctx.game.players):
            return getattr(self.fallback_rule(ctx), name)(ctx, *args)
        return fn(self, ctx, *args)

    method._dispatching = True  # type: ignore[attr-defined]
    return method


class Rule(Component):
    """How the players move in one step of the dynamics.

    A rule is a pair of functions over explicit state (cf. optax's ``init``/``update``), except that it
    sees the whole game through a :class:`Context`, because modified rules act on both players'
    fields jointly (look-ahead, consensus, SGA, competitive gradient descent, unrolling)::

        state = rule.init(ctx, params)                    # before step 0
        params, state = rule.step(ctx, params, state)     # one step, all R runs at once

    ``state`` is a dict of tensors with the run axis leading; by convention ``state["opt"]`` holds each
    player's optimizer state (``ctx.init_optimizers`` / ``ctx.apply``). ``step`` must be pure: no
    mutation of ``params`` or ``state`` in place, so that a step can be repeated, compared, or
    differentiated through (``ctx.create_graph``).

    **Cost counters.** ``state["counts"]`` is ``{"grad_evals": LongTensor[R], "hvps": LongTensor[R]}``:
    per run, the field evaluations (``ctx.grad``: one per call, whatever players it covers) and
    Hessian-vector products (``ctx.hvp``, ``ctx.field_vjp``, ``ctx.field_jvp``: one each) done so
    far, ``init`` included — the optax way of keeping ``count`` in the state. The base ``init``
    creates them at zero (:func:`zero_counts`); a rule's ``init`` that does not call it must put
    them in its state itself. Each ``step`` returns them advanced by what it did, with
    :func:`count` (``state["counts"] = count(state["counts"], grad_evals=2)``), per run: a run's
    counts are what *that run* needed (its own inner iterations in ``best_response`` or ``cgd``),
    never the batch's maximum, so they do not depend on which runs share its batch. The counters
    are integer tensors: the stability analysis holds them fixed (they are not dynamics), and a
    compiled chunk carries them like any other state leaf. A rule (a user's plugin) whose ``step``
    does not touch ``state["counts"]`` keeps the counters it was given: its costs read 0 in the
    runs table (not counted), and nothing else changes.

    **Capabilities.** A rule declares what it needs; a study that cannot provide it is rejected
    when it is loaded (:meth:`unmet`, one line naming the rule and what is missing):

    - ``needs``: the players its scheme acts on, by name or by role (e.g. ``("gen", "disc")``: it
      couples a generator and a discriminator; :mod:`gamedyn.players`: in a game of two players
      named otherwise, ``gen`` is the first and ``disc`` the second, and :meth:`cast` gives the
      players that take them). On a game without one of them, its ``fallback`` (a registered rule's
      name, e.g. ``"simultaneous"``) steps instead, ``init`` and ``step`` alike; with no fallback,
      such a study is an error;
    - a rule with per-optimizer requirements (``cgd`` reads each player's step size) overrides
      :meth:`unmet`.

    **First step of history-based rules.** A rule that uses earlier fields (optimistic / extragradient
    from the past, momentum-like look-backs) initialises its history in ``init`` from the field *at the
    initial point*, never from zeros, so that step 0 is the plain (simultaneous) gradient step and no
    spurious jump occurs (the failure of optax issue #1082). Its docstring states this and a test
    checks step 0 by hand.

    What counts as *one step* is the rule's: for ``alternating`` it is one round (each player's
    scheduled updates). ``steps`` in a study counts these.
    """

    #: Roughly the field evaluations and Hessian-vector products of one step (the config's inner
    #: loops at their bounds count half): only to start a study's longest batches first
    #: (:meth:`work`).
    evaluations: ClassVar[float] = 1.0
    #: The players the rule's scheme needs (empty: any game).
    needs: ClassVar[tuple[str, ...]] = ()
    #: The registered rule that steps a game lacking one of ``needs`` (None: such a game is an error).
    fallback: ClassVar[str | None] = None

    @classmethod
    def work(cls, config: dict[str, Any]) -> float:
        """Roughly the evaluations of one step under ``config`` (the rule's resolved parameters),
        for scheduling only: :data:`evaluations`, unless a rule's inner loops scale it."""
        return cls.evaluations

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("init", "step"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_dispatching", False):
                setattr(cls, name, _dispatching(fn, name))

    @classmethod
    def unmet(cls, config: Mapping[str, Any], players: tuple[str, ...],
              optimizers: Mapping[str, type]) -> str | None:
        """Why this rule (resolved ``config``) cannot step a game with ``players`` and the players'
        ``optimizers`` (classes), in one line; None when it can. Checked when a study is loaded."""
        missing = cls.missing(players)
        if missing and cls.fallback is None:
            return (f"rule {cls.name!r} needs the player(s) {', '.join(missing)}, which the game "
                    f"does not have (its players: {', '.join(players)})")
        return None

    @classmethod
    def missing(cls, players: tuple[str, ...]) -> list[str]:
        """Those of :attr:`needs` that no player of a game with ``players`` is or plays (a role,
        :func:`gamedyn.players.roles`)."""
        filled = set(players) | set(roles(players))
        return [p for p in cls.needs if p not in filled]

    @staticmethod
    def cast(ctx: Context, *needed: str) -> tuple[str, ...]:
        """The players of ``ctx.game`` that are or play ``needed`` (names or roles, e.g. ``"gen",
        "disc"`` → ``("p1", "p2")`` on tandem): what a rule with :attr:`needs` indexes ``params``,
        fields and optimizers by."""
        players = tuple(ctx.game.players)
        cast = roles(players)
        return tuple(n if n in players else cast[n] for n in needed)

    def fallback_rule(self, ctx: Context) -> Rule:
        """The rule that steps a game lacking one of :attr:`needs` (built once, with its defaults)."""
        if self.fallback is None:
            missing = self.missing(tuple(ctx.game.players))
            raise ValueError(f"rule {self.name!r} needs the player(s) {', '.join(missing)}, which "
                             f"game {ctx.game.name!r} does not have")
        rule = self.__dict__.get("_fallback")
        if rule is None:
            rule = RULES.get(self.fallback)()
            rule.setup(getattr(self, "dtype", torch.float64), getattr(self, "device", "cpu"))
            self._fallback = rule
        return rule

    def init(self, ctx: Context, params: Params) -> State:
        return {"opt": ctx.init_optimizers(params), "counts": zero_counts(params)}

    def step(self, ctx: Context, params: Params, state: State) -> tuple[Params, State]:
        raise NotImplementedError
