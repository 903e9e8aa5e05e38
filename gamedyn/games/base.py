"""The game interface: players with parameters over a run axis, and a loss per player per run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch

from .. import tree
from ..component import Component, Registry
from ..random import Streams

Tensor = torch.Tensor
#: player -> parameter name -> tensor of shape ``[R, *shape]`` (R runs on the leading axis).
Params = dict[str, dict[str, Tensor]]

GAMES = Registry("game")


class Game(Component):
    """A two-player differentiable game over a run axis.

    Players are ``gen`` (the minimising side) and ``disc`` (the maximising side). Each *minimises its
    own loss*: for a zero-sum game with value L(gen, disc), ``loss_gen = L`` and ``loss_disc = -L``, so
    the simultaneous gradient field is ξ = (∇_gen loss_gen, ∇_disc loss_disc) and every update rule
    descends ξ. Losses have shape ``[R]``; runs are independent, so the gradient of
    ``loss.sum()`` is each run's own gradient.

    A subclass declares ``params`` (see :class:`gamedyn.component.Param`) and implements
    :meth:`shapes` and :meth:`losses`; it may give :meth:`equilibrium` (then distances to it are
    recorded and diagnosed).
    """

    players: ClassVar[tuple[str, ...]] = ("gen", "disc")
    #: Whether :meth:`gradients` (and a sample game's :meth:`SampleGame.input_grad_sq_derivatives`)
    #: are differentiable torch expressions of the parameters, exact as functions (not only as
    #: values): then they are used where the field is differentiated again too (unrolling, the
    #: stability analysis, Lyapunov exponents) instead of a double backward pass through the losses.
    differentiable_gradients: ClassVar[bool] = False
    #: Per-run random streams (:class:`gamedyn.random.Streams`), bound by the batch before stepping;
    #: a stochastic game draws its samples from ``self.rng`` so that each run's noise is its own.
    rng: Streams | None = None

    @classmethod
    def describe(cls) -> str:
        """:meth:`Component.describe` with the players' names (what a study file's per-player
        entries use) on the second line."""
        first, *rest = super().describe().splitlines()
        return "\n".join([first, f"      players: {cls.roster()}", *rest])

    @classmethod
    def roster(cls) -> str:
        """The players, as ``gamedyn list`` shows them."""
        return ", ".join(cls.players)

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """Each player's parameters and their per-run shapes (without the run axis)."""
        raise NotImplementedError

    def n_params(self) -> int:
        """The parameters of one run, all players together."""
        return sum(int(np.prod(s, dtype=np.int64)) for named in self.shapes().values()
                   for s in named.values())

    def losses(self, params: Params) -> dict[str, Tensor]:
        """Each player's loss, a tensor of shape ``[R]``, at ``params``."""
        raise NotImplementedError

    def gradients(self, params: Params) -> Params | None:
        """Each player's gradient of its own loss in its own parameters, in closed form, or None
        (the default: autograd differentiates :meth:`losses`). A closed form skips building and
        running the backward graph, which is most of an eager step of a toy game. It is used for
        plain gradients, under no regularizer or one whose penalty has closed-form derivatives
        (:meth:`gamedyn.regularizers.Regularizer.derivatives`), and where they are differentiated
        again only if :attr:`differentiable_gradients` says so; ``tests/test_closed_form.py``
        checks every game's against autograd (values, and derivatives where differentiable)."""
        return None

    def hessians(self, params: Params) -> dict[str, Tensor] | None:
        """Each player's loss Hessian in *all* players' parameters, in closed form: ``{player:
        [R, n, n]}``, n the coordinates of one run, laid out as :meth:`coordinates`; or None (the
        default: autograd's Hessian-vector products). Used, as :meth:`gradients`, for products
        that are not differentiated again (:class:`gamedyn.rules.Context`'s ``hvp``,
        ``field_vjp``, ``field_jvp``): a rule's inner solve then costs a small batched
        matrix product instead of a double backward pass. ``tests/test_closed_form.py`` checks
        every game's against autograd's Hessian."""
        return None

    def coordinates(self, params: Params) -> dict[str, slice]:
        """Where each player's coordinates lie in the flat vector z of one run that
        :meth:`hessians` differentiates in: the players in :attr:`players` order, each
        :func:`gamedyn.tree.ravel`-ed."""
        out, start = {}, 0
        for player in self.players:
            n = sum(int(np.prod(v.shape[1:], dtype=np.int64)) for v in params[player].values())
            out[player] = slice(start, start + n)
            start += n
        return out

    def equilibrium(self) -> Params | None:
        """The equilibrium (per-run shapes, no run axis), or None when the game does not know one."""
        return None

    def init_params(self, seeds: list[int]) -> Params | None:
        """The game's own initial parameters for runs with these seeds ([R, *shape]; run r's from
        its seed only), or None (default) to draw them from the study's ``init:`` spec
        (:func:`gamedyn.init.initial_params`). Neural games use it for their layer-wise schemes
        (orthogonal with gain, …); explicit values in ``init:`` still replace a parameter."""
        return None

    @classmethod
    def plugin_files(cls, config: dict) -> tuple[str, ...]:
        """Python files (absolute paths) that a resolved configuration of this game imports, e.g.
        the user's network modules: they travel with the study's ``plugins:`` to every worker.
        Default: none."""
        return ()

    def final_columns(self, params: Params, n_runs: int) -> dict[str, list]:
        """Columns of the runs table computed from the final parameters of the first ``n_runs`` runs
        (e.g. ``module_gan``'s saved weights, :meth:`gamedyn.results.Results.players`). Default:
        none."""
        return {}

    def metrics(self, params: Params) -> dict[str, Tensor]:
        """Extra per-run quantities [R] to record along the trajectory (fit to the data, gradient
        diagnostics…), named as trajectory variables. Evaluated at record steps only, with gradients
        enabled, on the recorder's own random stream. Default: none."""
        return {}

    def diagnose_fit(self, steps: np.ndarray, series: dict[str, np.ndarray], n_valid: np.ndarray
                     ) -> dict[str, np.ndarray]:
        """Fit labels and their evidence from the recorded trajectories (``series[name]`` is
        [R, T], NaN past each run's stop; ``n_valid`` [R] the valid records), as columns [R] of the
        runs table. Must include ``fit`` ∈ {fit, underfit, mode_collapse, n/a}. Vectorised over runs.
        Default: ``n/a`` (the game has no data to fit)."""
        return {"fit": np.full(len(n_valid), "n/a", dtype=object)}

    @contextlib.contextmanager
    def using(self, rng: Streams | None) -> Iterator[None]:
        """Temporarily draw from another stream (the recorder's evaluations)."""
        old, self.rng = self.rng, rng
        try:
            yield
        finally:
            self.rng = old

    def zeros(self) -> Params:
        """All-zero parameters in per-run shapes (a helper for equilibria at the origin)."""
        return {
            player: {name: torch.zeros(shape, dtype=self.dtype, device=self.device)
                     for name, shape in named.items()}
            for player, named in self.shapes().items()
        }


class SampleGame(Game):
    """A GAN-like game whose losses come from a discriminator evaluated on samples.

    Data-space regularizers (R1/R2 gradient penalties, instance noise, WGAN-GP) need this
    structure. A subclass gives:

    - ``disc_logit(params, x)``: the discriminator's output D(x) for samples ``x`` [R, n, d] → [R, n];
    - ``real_samples(R)`` and ``fake_samples(params)``: (samples [R, n, d], weights [R, n]) with
      weights summing to 1 per run — Monte Carlo samples or quadrature nodes, the fake ones
      differentiable in the generator's parameters;
    - ``objective(params, real, fake)``: each player's loss [R] given those samples.

    Then ``losses(params) = objective(params, real_samples(R), fake_samples(params))``, and a
    regularizer may perturb the samples or penalise ∇_x D at them.
    """

    def disc_logit(self, params: Params, x: Tensor) -> Tensor:
        raise NotImplementedError

    def input_grad_sq_derivatives(self, params: Params, on: str) -> tuple[Tensor, Tensor] | None:
        """The gradient ``[R, m]`` and Hessian ``[R, m, m]`` in the discriminator's m (flat)
        parameters of Σₙ wₙ ‖∇_x D(xₙ)‖² over the ``real`` or ``fake`` samples (``on``; treated as
        data, as the penalties do), in closed form; or None (the default: autograd). The R1/R2
        penalties (:mod:`gamedyn.regularizers.gradient_penalty`) then skip their double backward
        pass. ``tests/test_closed_form.py`` checks every game's against autograd."""
        return None

    def minibatch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Samples ``x`` [R, n, ...] of a minibatch with their weights 1/n each."""
        return x, torch.full(x.shape[:2], 1.0 / x.shape[1], dtype=self.dtype, device=self.device)

    def real_samples(self, n_runs: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def fake_samples(self, params: Params) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def objective(self, params: Params, real: tuple[Tensor, Tensor],
                  fake: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def losses(self, params: Params) -> dict[str, Tensor]:
        n_runs = tree.n_runs(params["gen"])
        return self.objective(params, self.real_samples(n_runs), self.fake_samples(params))

    #: The random stream of :meth:`draw_evaluation`'s draws, apart from training's (a subclass's).
    EVAL_STREAM: ClassVar[int]

    def draw_evaluation(self, rng: Streams) -> dict[str, Tensor]:
        """The fixed samples (latents, data, what is computed from them once) that a game's metrics
        evaluate on, drawn from ``rng`` (each run's own stream :data:`EVAL_STREAM`)."""
        raise NotImplementedError

    def _evaluation(self) -> dict[str, Tensor]:
        """:meth:`draw_evaluation` for these runs: drawn once, then cached (one batch's at a time)."""
        keys = self.rng.keys
        key = (tuple(keys.tolist()), str(keys.device))
        cached = self.__dict__.get("_eval")
        if cached is None or cached[0] != key:
            self._eval = (key, self.draw_evaluation(Streams(keys, self.EVAL_STREAM, self.device)))
        return self._eval[1]
