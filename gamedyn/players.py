"""A game's player names: what a study file may call them, and the roles rules give them.

A game names its players (:attr:`gamedyn.games.base.Game.players`). GAN games call them ``gen``
and ``disc`` (some have only one of them, or list them in another order); a general-sum game may
call them what fits, e.g. ``p1``, ``p2``. Two ideas live here, and only here:

- **the names a study file uses** (:func:`names`): per-player optimizer overrides
  (``optimizer: {p1: {lr: 0.2}}``), explicit initial values (``init: {p1: {x: 1.0}}``), grid and
  Sobol coordinates (``p1.x``) and ``alternating``'s ``first`` take the game's own names. A game
  whose players are all among ``gen``, ``disc`` is a *GAN game*: its study entries are always
  ``gen`` and ``disc``, both of them, whether it has one player or two (the run configurations
  and ids of such studies are what they were before players could be named);
- **the roles** (:func:`roles`): rules built for a generator and a discriminator
  (``best_response``, ``unrolled``, ``cgd``, ``alternating``'s ``gen_steps``/``disc_steps``) act
  on the *roles* ``gen`` and ``disc``. In a GAN game a role is the player of that name. In any other
  game of exactly two players, ``gen`` is its first player and ``disc`` its second (the order of
  :attr:`~gamedyn.games.base.Game.players`): e.g. under ``best_response`` on ``tandem`` player 2
  best-responds to player 1. A game of more than two players, none named gen/disc, fills no role,
  and a rule that needs them falls back (or is refused) as on a one-player GAN game.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The players of GAN games, in the order of study entries and of the roles.
GAN = ("gen", "disc")


def names(players: Iterable[str]) -> tuple[str, ...]:
    """The player names a study file may use for a game with ``players``: ``("gen", "disc")`` for a
    GAN game (its players all among them), else the game's own names in its order."""
    players = tuple(players)
    return GAN if set(players) <= set(GAN) else players


def roles(players: Iterable[str]) -> dict[str, str]:
    """Role (``gen``, ``disc``) → the player that takes it, for a game with ``players``: in a GAN
    game each player its own name's role; in another two-player game the first player ``gen``, the
    second ``disc``; otherwise none."""
    players = tuple(players)
    if set(players) <= set(GAN):
        return {p: p for p in GAN if p in players}
    return dict(zip(GAN, players)) if len(players) == 2 else {}


def player(name: str, players: Iterable[str]) -> str | None:
    """The player a study's ``name`` means in a game with ``players``: a player's own name, or a role
    (:func:`roles`) that a player takes; None when it means none of them."""
    players = tuple(players)
    return name if name in players else roles(players).get(name)


def accepted(players: Iterable[str]) -> str:
    """The accepted names, as an error message lists them (``gen, disc`` or ``p1, p2``)."""
    return ", ".join(names(players))
