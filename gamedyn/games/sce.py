"""Self-contrastive estimation (Goodfellow 2014): NCE whose noise is a frozen copy of the model."""

from __future__ import annotations

import math

import torch

from ..component import Param
from ..costs import zeta
from .base import GAMES, Params, Tensor
from .density import DensityGame, density_params


@GAMES.register("sce")
class SCE(DensityGame):
    """Self-contrastive estimation: NCE against a frozen copy of the model, refreshed every step.

    Goodfellow (2014, arXiv 1412.6515, §2; Goodfellow, Bengio & Courville 2016, *Deep Learning*,
    §18.6): noise-contrastive estimation whose noise is a copy of the current model, refreshed
    before every gradient step, with no gradient through the copy.

    With the copy's parameters θ′ = stopgrad(θ) the classifier's logit is
    G(x) = log p̃_m(x; θ) − log p̃_m(x; θ′) − log ν, the noise points are drawn from the (normalised)
    copy p_{θ′}, and the ``disc`` player minimises E_{p_d} ζ(−G) + ν E_{p_θ′} ζ(G). At θ = θ′, G ≡ −log ν,
    so D ≡ 1/(1 + ν) (½ for ν = 1) and the expected gradient is

        −∇J = −ν/(1 + ν) · (E_{p_d} ∇ log p̃_m − E_{p_θ} ∇ log p̃_m) = ν/(1 + ν) · g_MLE,

    exactly ½ the maximum-likelihood gradient for ν = 1 (``grad.ratio_mle`` = 0.5, ``grad.cos_mle`` = 1
    at every θ). For the unnormalised model the negative phase E_{p_θ} ∇ log p̃ appears, as in
    contrastive divergence with exact samples, and the log-normaliser c gets no gradient
    (E_{p_d} 1 − E_{p_θ} 1 = 0): SCE, like maximum likelihood, leaves c where it is. Hence SCE at
    learning rate 2η follows maximum likelihood at η, exactly with ``gradient: exact`` and in
    expectation with minibatches. The value V(p_c, p_copy) is −log 4 for ν = 1 at every θ: the
    criterion's *value* carries no information, its gradient does.

    ``copy: stale`` breaks the identity on purpose: the copy is then the ``gen`` player, with
    parameters φ of the model's shapes (the copy's density is p̃_m(·; φ)), moved by its own update on
    the loss ½‖φ − stopgrad(θ)‖². With SGD at learning rate 1 for ``gen`` (``optimizer: {gen:
    {lr: 1.0}}``) a gen step copies the model exactly, so under ``alternating`` play with
    ``first: gen`` and ``disc_steps: k`` the copy is refreshed every k model steps (k = 1 is SCE);
    under ``simultaneous`` play it lags one step, and a ``gen`` learning rate λ < 1 makes it an
    exponential moving average of the model. Between refreshes θ ≠ φ and the gradient is no longer
    ν/(1 + ν) · g_MLE. The equilibrium (θ = φ = the maximum-likelihood fit) is known when the model is
    the normalised Gaussian (for mixture data: the moment-matched Gaussian, as for MLE).
    """

    params = density_params(
        nu=Param(float, 1.0, "noise-to-data ratio ν (the identity's factor is ν/(1 + ν))",
                 low=0.0, low_open=True),
        copy=Param(str, "fresh", "the noise: a copy of the model refreshed at every evaluation "
                                 "(fresh), or the gen player's stale copy", choices=("fresh", "stale")),
    )

    def setup(self, dtype: torch.dtype, device: str) -> None:
        super().setup(dtype, device)
        self.players = ("disc", "gen") if self.copy == "stale" else ("disc",)

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        out = {"disc": dict(self.family.shapes)}  # disc first: the model gets a seed's first draws
        if self.copy == "stale":
            out["gen"] = dict(self.family.shapes)
        return out

    def copy_params(self, params: Params) -> dict[str, Tensor]:
        """θ′: the frozen copy (detached: no gradient flows through it)."""
        src = params["gen"] if self.copy == "stale" else params["disc"]
        return {k: v.detach() for k, v in src.items()}

    def logit(self, mp: dict[str, Tensor], cp: dict[str, Tensor], x: Tensor) -> Tensor:
        """G(x) = log p̃_m(x; θ) − log p̃_m(x; θ′) − log ν."""
        return self.log_model(mp, x) - self.log_model(cp, x) - math.log(self.nu)

    def criterion(self, params: Params, exact: bool) -> dict[str, Tensor]:
        mp, cp = params["disc"], self.copy_params(params)
        R = self.n_runs(params)
        xd, wd = self.data_points(R, exact)
        xn, wn = self.expectation_points(self.family.distribution(cp), R, exact)
        loss = ((wd * zeta(-self.logit(mp, cp, xd))).sum(-1)
                + self.nu * (wn * zeta(self.logit(mp, cp, xn))).sum(-1))
        out = {"disc": loss}
        if self.copy == "stale":
            out["gen"] = 0.5 * sum(((params["gen"][k] - mp[k].detach()) ** 2) for k in mp)
        return out

    def classifier(self, params: Params):
        mp, cp = params["disc"], self.copy_params(params)
        R = self.n_runs(params)
        xd, wd = self.data_points(R, exact=True)
        xn, wn = self.expectation_points(self.family.distribution(cp), R, exact=True)
        return self.logit(mp, cp, xd), wd, self.logit(mp, cp, xn), wn

    def metrics(self, params: Params) -> dict[str, Tensor]:
        out = super().metrics(params)
        if self.copy == "stale":  # how far the copy lags behind the model
            out["copy.lag"] = torch.sqrt(sum((params["gen"][k] - params["disc"][k]) ** 2
                                             for k in params["disc"])).detach()
        return out

    def equilibrium(self) -> Params | None:
        truth = self.truth()
        if truth is None:
            return None
        eq = {"disc": self.as_params(truth)}
        if self.copy == "stale":
            eq["gen"] = self.as_params(truth)
        return eq
