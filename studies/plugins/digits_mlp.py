"""A small MLP generator and discriminator for scikit-learn's 8 x 8 digits, written as a user writes
them: plain ``torch.nn.Module``s, nothing of gamedyn. ``studies/digits_gan.yaml`` names them."""

from torch import nn


class Generator(nn.Module):
    """z [n, latent] -> images [n, 1, 8, 8] in (-1, 1)."""

    def __init__(self, latent: int = 16, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 64), nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, 1, 8, 8)


class Discriminator(nn.Module):
    """images [n, 1, 8, 8] -> one logit per image [n, 1]."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)
