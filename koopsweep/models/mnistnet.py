"""MnistNet as in ShrinkBench and the paper: 2 conv + 2 fc layers, 431,080 parameters on MNIST."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _flat_features(height: int, width: int) -> int:
    """Features after conv5 -> pool2 -> conv5 -> pool2 (800 for 28x28), so other image sizes still build."""
    for _ in range(2):
        height, width = (height - 4) // 2, (width - 4) // 2
    if height < 1 or width < 1:
        raise ValueError(f"MnistNet needs images of at least 16x16 pixels, got {height}x{width} after the convs")
    return 50 * height * width


class MnistNet(nn.Module):
    """conv(C->20, 5x5) -> ReLU -> maxpool 2 -> conv(20->50, 5x5) -> ReLU -> maxpool 2 -> fc(800->500) -> ReLU -> fc."""

    classifier_name: str = "fc2"

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(_flat_features(height, width), 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)
