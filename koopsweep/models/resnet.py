"""CIFAR ResNets (He et al. 2016, sec. 4.2) of depth 6n + 2 with option-A shortcuts, as in ShrinkBench and the paper.

Option A keeps the shortcuts parameter-free (strided subsampling + zero channel padding), so every parameter
belongs to a conv, a BatchNorm or the classifier: ResNet-20 has 269,722 parameters for 3x32x32 inputs and 10
classes, ResNet-56 853,018. Parameter names match ShrinkBench's models but for the classifier (``fc`` here,
``linear`` there), so their pretrained weights load after a rename (koopsweep.models.pretrained).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortcutA(nn.Module):
    """Parameter-free shortcut: take every ``stride``-th pixel and zero-pad the new channels on both sides."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or option-A) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut: nn.Module = ShortcutA(in_planes, planes, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """conv(C->16) + 3 stages x n basic blocks (16/32/64 channels, stride 1/2/2) + global avg pool + fc.

    ``depth`` = 6n + 2: 20, 32, 44, 56, 110, ...
    """

    classifier_name: str = "fc"
    widths: tuple[int, int, int] = (16, 32, 64)
    depth: int = 20

    def __init__(
        self, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10, depth: int | None = None
    ) -> None:
        super().__init__()
        self.depth = depth if depth is not None else type(self).depth
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, ...), got {self.depth}")
        self.blocks_per_stage = (self.depth - 2) // 6
        channels = input_shape[0]
        self.conv1 = nn.Conv2d(channels, self.widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.widths[0])
        in_planes = self.widths[0]
        stages = []
        for index, width in enumerate(self.widths):
            blocks = []
            for block in range(self.blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_planes, width, stride))
                in_planes = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(self.widths[-1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal conv and linear weights (He et al. 2015), as the reference CIFAR implementations do."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class ResNet20(CifarResNet):
    """ResNet-20: 3 blocks per stage (the paper's CIFAR-10 network)."""

    depth = 20


class ResNet32(CifarResNet):
    depth = 32


class ResNet44(CifarResNet):
    depth = 44


class ResNet56(CifarResNet):
    """ResNet-56: 9 blocks per stage (ShrinkBench ships pretrained weights for it)."""

    depth = 56
