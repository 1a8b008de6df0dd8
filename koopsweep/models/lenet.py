"""LeNet-300-100 (LeCun et al. 1998): the fully connected baseline of the pruning literature."""

from __future__ import annotations

import math

import torch
from torch import nn


class LeNet300100(nn.Module):
    """MLP in-300-100-classes with ReLU; flattens a (C, H, W) input, so in_features = C*H*W (784 on MNIST)."""

    classifier_name: str = "fc3"

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(math.prod(input_shape), 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
