"""A discriminator whose output passes through a sigmoid, for ``tests/test_alignment.py``: ATen's
vectorised and scalar sigmoid round differently for a few percent of inputs, so a run's numbers
change with its batch unless the run axis is aligned to what this sigmoid needs."""

import torch
from torch import nn


class Discriminator(nn.Module):
    """images [n, 1, 8, 8] -> one logit per image [n, 1], 4 σ(8h) − 2."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return 4 * torch.sigmoid(8 * self.net(x)) - 2
