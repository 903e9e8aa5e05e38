"""Maximum-likelihood estimation of the density model, as a one-player game (the reference)."""

from __future__ import annotations

from ..costs import optimal_logit
from .base import GAMES, Params, Tensor
from .density import DensityGame, density_params


@GAMES.register("mle")
class MLE(DensityGame):
    """Maximum likelihood: the density model p_m (the disc player) minimises E_{p_d}[−log p_m].

    That is KL(p_d ‖ p_m) up to the data's entropy: the reference against which Goodfellow (2014,
    arXiv 1412.6515) measures NCE, SCE and the GAN generator costs.

    For the ``unnormalised`` model the likelihood uses the exact log partition function
    (log Z = c + log σ + ½ log 2π, tractable in 1-D), so its gradient has the negative phase
    −E_{p_m} ∇ log p̃ and c gets none (c is not identified: the equilibrium is then unknown and the
    dynamics are judged on the gradient's norm). The value recorded is V(D*, p_m) with the optimal
    classifier between data and model, −log 4 + 2 JSD(p_d ‖ p_m). Known equilibrium for the normalised
    Gaussian: the moment-matched N(E x, Var x) of the data (the data's own parameters when Gaussian).
    """

    params = density_params()

    def criterion(self, params: Params, exact: bool) -> dict[str, Tensor]:
        R = self.n_runs(params)
        xd, wd = self.data_points(R, exact)
        return {"disc": self.mle_loss(params["disc"], xd, wd)}

    def classifier(self, params: Params):
        mp = params["disc"]
        R = self.n_runs(params)
        model = self.family.distribution(mp)
        xd, wd = self.data_points(R, exact=True)
        xm, wm = self.expectation_points(model, R, exact=True)
        a_d = optimal_logit(self.data_dist.log_prob(xd), model.log_prob(xd))
        a_m = optimal_logit(self.data_dist.log_prob(xm), model.log_prob(xm))
        return a_d, wd, a_m, wm

    def equilibrium(self) -> Params | None:
        truth = self.truth()
        return None if truth is None else {"disc": self.as_params(truth)}
