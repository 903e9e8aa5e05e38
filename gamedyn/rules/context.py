"""What an update rule may ask for in a step: the game's field at a point, and each player's optimizer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .. import tree
from ..games.base import Game, Params
from ..optim.base import Optimizer
from ..regularizers.base import Regularizer

Tensor = torch.Tensor


class SameSamples:
    """Makes every loss evaluation of one step draw the same samples from a stochastic game.

    CG needs one fixed matrix: if each Hessian-vector product drew a fresh minibatch, α and β
    would mix different matrices. Before each evaluation the game's training stream is set back to
    the draw counter it had when the step began (draws are a function of the counter); afterwards
    it is left past the furthest draw. Deterministic games (``game.rng`` is None) are untouched.
    """

    def __init__(self, game: Game) -> None:
        self.rng = game.rng
        self.start = self.end = None if self.rng is None else self.rng.counter

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.rng is None:
            yield
            return
        saved, self.rng.counter = self.rng.counter, self.start
        try:
            yield
        finally:
            self.end = max(self.end, self.rng.counter)
            self.rng.counter = max(saved, self.end)


class FieldMemo:
    """The last field evaluated at a point, shared by the recorder and the rule's context: stepping
    eagerly with a record after every step, the record's field at z_t is the one the next step
    evaluates first (simultaneous play, extragradient's extrapolation, …), so it is computed once.

    A hit needs the very same tensors (``is``, and unchanged ``_version``), held by the memo so that
    they cannot be freed and their addresses reused. Only the batch may share one, and only where
    both contexts evaluate the same losses bit for bit: no regularizer that changes them, a game
    that did not draw random numbers for it (the recorder draws from a stream of its own), and never
    with ``create_graph`` or on traced (fake) tensors.
    """

    def __init__(self) -> None:
        self._at: list[Tensor] = []
        self._field: Params = {}

    @staticmethod
    def _plain(leaves: list[Tensor]) -> bool:
        return all(type(t) is torch.Tensor for t in leaves)

    def get(self, params: Params, players: tuple[str, ...]) -> Params | None:
        leaves = tree.leaves(params)
        if (len(leaves) == len(self._at) and set(players) <= set(self._field)
                and all(a is b and a._version == v for a, (b, v) in zip(leaves, self._at))):
            return {p: self._field[p] for p in players}
        return None

    def put(self, params: Params, field: Params) -> None:
        leaves = tree.leaves(params)
        if self._plain(leaves):
            self._at, self._field = [(t, t._version) for t in leaves], field


class Context:
    """The game and the players' optimizers, handed to a rule's ``init``/``step``.

    ``grad`` evaluates player gradients at any point (the current one, an extrapolated one, a
    look-ahead), ``hvp`` gives Hessian-vector products of a player's loss, and ``apply`` moves players
    with their own optimizers. Evaluations enable autograd themselves, so they work inside
    ``torch.no_grad()`` (as the stepping loop runs) and in a rule's ``init``. A context holds no
    state: the cost of each evaluation (stated in its docstring) is counted by the rule, in its
    state's per-run counters (``state["counts"]``, see :class:`gamedyn.rules.Rule`), so rules can be
    compared at equal compute.

    With ``create_graph=True`` the returned gradients stay differentiable, so a whole step can be
    differentiated (for the Jacobian of the update map in the stability analysis, or for unrolling).
    """

    def __init__(self, game: Game, optimizers: dict[str, Optimizer], create_graph: bool = False,
                 regularizer: Regularizer | None = None, memo: FieldMemo | None = None):
        self.game, self.optimizers, self.create_graph = game, optimizers, create_graph
        self.regularizer = regularizer
        self.memo = None if create_graph else memo  # see FieldMemo

    def with_graph(self, create_graph: bool = True) -> Context:
        """The same context with ``create_graph`` set (default True: gradients it returns can be
        differentiated again, as the unrolled look-ahead and the Jacobian of a whole step need;
        False: its evaluations are constants)."""
        if create_graph == self.create_graph:
            return self
        return Context(self.game, self.optimizers, create_graph=create_graph,
                       regularizer=self.regularizer)  # (no memo: see FieldMemo)

    def losses(self, params: Params) -> dict[str, Tensor]:
        """Each player's loss (shape ``[R]``) as the rule sees it. Rules call this, never
        ``game.losses`` directly, so that the study's regularizer applies to every rule alike."""
        if self.regularizer is None:
            return self.game.losses(params)
        return self.regularizer.losses(self.game, params)

    def _leaves(self, params: Params) -> Params:
        """The point as fresh autograd nodes. With ``create_graph`` they are views of the inputs
        (so derivatives flow back to them) — never the input tensors themselves: a vector computed
        from the same tensors would otherwise add (∂v/∂z)ᵀξ to a product like Jᵀv."""
        if self.create_graph:
            return {pl: {k: v.view_as(v) if v.requires_grad else v.detach().requires_grad_()
                         for k, v in named.items()} for pl, named in params.items()}
        return {pl: {k: v.detach().requires_grad_() for k, v in named.items()}
                for pl, named in params.items()}

    def grad(self, params: Params, players: Iterable[str] | None = None) -> Params:
        """Each listed player's gradient of its own loss w.r.t. its own parameters (default: all).

        One call is one *gradient evaluation* of the field (however many players it covers).
        """
        players = tuple(players or self.game.players)
        if self.memo is not None and (hit := self.memo.get(params, players)) is not None:
            return hit
        if (closed := self._closed_form(params)) is not None:
            return {p: closed[p] for p in players}
        return self.losses_and_grad(params, players)[1]

    def _closed_form(self, params: Params) -> Params | None:
        """The game's closed-form gradients (:meth:`Game.gradients`) where they are what autograd
        would give: the losses the game's own or penalised by a regularizer with closed-form
        derivatives (:meth:`Regularizer.derivatives`), and, with ``create_graph``, a game whose
        closed forms are differentiable (:attr:`Game.differentiable_gradients`; then they are
        functions of ``params``, else constants)."""
        if self.create_graph and not self.game.differentiable_gradients:
            return None
        with torch.set_grad_enabled(self.create_graph):
            if (grads := self.game.gradients(params)) is None:
                return None
            if (extra := self._penalty(params)) is None:
                return None
            for player, (g, _) in extra.items():
                more = tree.unravel(g, params[player])
                grads = {**grads, player: {k: v + more[k] for k, v in grads[player].items()}}
        return grads

    def _penalty(self, params: Params) -> dict[str, tuple[Tensor, Tensor]] | None:
        """The regularizer's closed-form derivatives: {} where it changes no loss, None where it
        changes them without a closed form."""
        if self.regularizer is None or not self.regularizer.changes_losses:
            return {}
        return self.regularizer.derivatives(self.game, params)

    def _hessians(self, params: Params) -> dict[str, Tensor] | None:
        """The players' loss Hessians in closed form (:meth:`Game.hessians`, plus the
        regularizer's), under the same conditions as :meth:`_closed_form`."""
        if self.create_graph or (hessians := self.game.hessians(params)) is None:
            return None
        if (extra := self._penalty(params)) is None:
            return None
        at = self.game.coordinates(params)
        for player, (_, h) in extra.items():
            n, sl = hessians[player].shape[-1], at[player]
            pad = torch.nn.functional.pad(h, (sl.start, n - sl.stop, sl.start, n - sl.stop))
            hessians = {**hessians, player: hessians[player] + pad}  # (not in place: fusion)
        return hessians

    def _field_jacobian(self, params: Params) -> Tensor | None:
        """J = ∂ξ/∂z ``[R, n, n]`` from the closed-form Hessians (player i's rows: its own loss's
        Hessian's rows of its own coordinates), or None."""
        if (hessians := self._hessians(params)) is None:
            return None
        at = self.game.coordinates(params)
        return torch.cat([hessians[p][:, at[p], :] for p in self.game.players], 1)

    @staticmethod
    def _product(matrix: Tensor, params: Params, vector: Params, rows: Iterable[str],
                 cols: Iterable[str]) -> Params:
        """``matrix`` [R, m, n] times ``vector``'s coordinates of the players ``cols`` (laid out as
        ``params``' and :meth:`Game.coordinates`), as a tree of ``params``' players ``rows``."""
        flat = tree.ravel(vector, like={p: params[p] for p in cols})
        out = torch.bmm(matrix, flat[:, :, None])[:, :, 0]
        return tree.unravel(out, {p: params[p] for p in rows})

    @torch.enable_grad()
    def losses_and_grad(self, params: Params, players: Iterable[str] | None = None
                        ) -> tuple[dict[str, Tensor], Params]:
        """:meth:`grad`, with the players' losses (detached) of the same evaluation."""
        players = tuple(players or self.game.players)
        if (closed := self._closed_form(params)) is not None:
            with torch.no_grad():
                losses = self.losses(tree.detach(params))
            return losses, {p: closed[p] for p in players}
        leaves = self._leaves(params)
        losses = self.losses(leaves)
        out: Params = {}
        for i, player in enumerate(players):
            names = list(leaves[player])
            gs = torch.autograd.grad(
                losses[player].sum(), [leaves[player][k] for k in names],
                create_graph=self.create_graph,
                retain_graph=self.create_graph or i < len(players) - 1,
            )
            out[player] = dict(zip(names, gs))
        return {p: v.detach() for p, v in losses.items()}, out

    @torch.enable_grad()
    def loss_grads(self, params: Params) -> dict[str, Params]:
        """Every player's loss differentiated in every player's parameters: ``out[i][j]`` is
        ∇_j L_i (opponent shaping needs the cross terms ∇_j L_i, j ≠ i; ``out[i][i]`` is the
        field's ξᵢ). One call is one *gradient evaluation* (one evaluation of the losses, one
        backward pass per player), as :meth:`grad`."""
        leaves = self._leaves(params)
        losses = self.losses(leaves)
        players = tuple(self.game.players)
        return {pl: tree.grad(losses[pl].sum(), leaves, create_graph=self.create_graph,
                              retain_graph=self.create_graph or i < len(players) - 1)
                for i, pl in enumerate(players)}

    @torch.enable_grad()
    def hvp(self, params: Params, loss_player: str, wrt: str, of: str, vector: dict[str, Tensor]
            ) -> dict[str, Tensor]:
        """∂/∂(wrt) ⟨∇_(of) loss_(loss_player), vector⟩: a Hessian block of one player's loss times a vector.

        ``of == wrt`` gives a diagonal block, ``of != wrt`` a mixed block (as consensus optimisation,
        SGA and competitive gradient descent need). Each call is one Hessian-vector product (a
        batched matrix product where the game gives its Hessians in closed form: :meth:`_hessians`).
        """
        if (hessians := self._hessians(params)) is not None:
            at = self.game.coordinates(params)
            block = hessians[loss_player][:, at[wrt], at[of]]
            return self._product(block, params, {of: vector}, (wrt,), (of,))[wrt]
        leaves = self._leaves(params)
        loss = self.losses(leaves)[loss_player].sum()
        g = torch.autograd.grad(loss, list(leaves[of].values()), create_graph=True)
        dot = sum((gi * vector[k]).sum() for gi, k in zip(g, leaves[of]))
        return tree.grad(dot, leaves[wrt], create_graph=self.create_graph)

    @torch.enable_grad()
    def field_vjp(self, params: Params, vector: Params) -> Params:
        """Jᵀv, where J = ∂ξ/∂z is the Jacobian of the simultaneous field ξ = (∇_gen L_gen,
        ∇_disc L_disc) at ``params`` and ``vector`` has the shape of the parameters (for every run at
        once). E.g. consensus optimisation's ∇(½‖ξ‖²) = Jᵀξ. One Hessian-vector product."""
        if (J := self._field_jacobian(params)) is not None:
            players = self.game.players
            return self._product(J.transpose(1, 2), params, vector, players, players)
        leaves = self._leaves(params)
        losses = self.losses(leaves)
        field = {}
        for pl in leaves:
            names = list(leaves[pl])
            gs = torch.autograd.grad(losses[pl].sum(), [leaves[pl][k] for k in names],
                                     create_graph=True)
            field[pl] = dict(zip(names, gs))
        return tree.grad(tree.vdot(field, vector).sum(), leaves, create_graph=self.create_graph)

    @torch.enable_grad()
    def field_jvp(self, params: Params, vector: Params) -> Params:
        """Jv (J = ∂ξ/∂z as in :meth:`field_vjp`), by differentiating u ↦ ⟨Jᵀu, v⟩ in u (the
        double-backward trick). SGA needs both Jv and Jᵀv. One Hessian-vector product."""
        if (J := self._field_jacobian(params)) is not None:
            players = self.game.players
            return self._product(J, params, vector, players, players)
        u = tree.zeros_like(params, requires_grad=True)
        jt_u = self.with_graph().field_vjp(params, u)
        return tree.grad(tree.vdot(jt_u, vector).sum(), u, create_graph=self.create_graph)

    def init_optimizers(self, params: Params) -> dict[str, Any]:
        """Each player's fresh optimizer state."""
        return {pl: self.optimizers[pl].init(params[pl]) for pl in params}

    def apply(self, grads: Params, params: Params, opt_state: dict[str, Any]
              ) -> tuple[Params, dict[str, Any]]:
        """Move the players named in ``grads`` with their optimizers; the others stay where they are.
        The regularizer's projection (e.g. weight clipping) follows each move."""
        params, opt_state = dict(params), dict(opt_state)
        for player, g in grads.items():
            params[player], opt_state[player] = self.optimizers[player].update(
                g, opt_state[player], params[player])
            if self.regularizer is not None:
                params[player] = self.regularizer.project(player, params[player])
        return params, opt_state
