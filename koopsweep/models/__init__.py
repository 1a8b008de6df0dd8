"""Networks of the paper (MnistNet, ResNet-20) and LeNet-300-100, all built as ``Model(input_shape, num_classes)``."""

from __future__ import annotations

from torch import nn

from koopsweep.models.lenet import LeNet300100
from koopsweep.models.mnistnet import MnistNet
from koopsweep.models.resnet import ResNet20

MODELS: dict[str, type[nn.Module]] = {
    "lenet_300_100": LeNet300100,
    "mnistnet": MnistNet,
    "resnet20": ResNet20,
}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (all of them by default, as ShrinkBench's size metric counts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODELS", "LeNet300100", "MnistNet", "ResNet20", "count_parameters"]
