"""A one-hidden-layer fully connected network of configurable width (Redman et al. 2024's FCN-width study)."""

from __future__ import annotations

import math

import torch
from torch import nn


class FCN(nn.Module):
    """in → ``hidden`` → classes with ReLU; no biases by default, as in the study (only weights move).

    The classifier ``fc2`` (10·hidden weights) is what the study tracks: ``koopman.params=[fc2]``.
    """

    classifier_name: str = "fc2"

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        hidden: int = 40,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.fc1 = nn.Linear(math.prod(input_shape), hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))
