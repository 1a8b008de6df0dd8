"""Generated, learnable data with MNIST or CIFAR shapes: tests and smoke runs train on it in seconds, offline.

Each class has a smooth random template; a sample is its class template plus Gaussian pixel noise, so a few
SGD steps take any of the models well above chance while the data still looks like images to a conv net.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from koopsweep.data.info import DatasetInfo
from koopsweep.data.tensors import TensorData, derive_generator
from koopsweep.errors import DataError

SHAPES: dict[str, tuple[int, int, int]] = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def make_synthetic(
    root: str | Path | None = None,
    download: bool = False,
    like: str = "mnist",
    train: int = 1024,
    test: int = 256,
    num_classes: int = 10,
    seed: int = 0,
    noise: float = 1.0,
) -> TensorData:
    """``train`` / ``test`` samples shaped like ``like`` (mnist: 1x28x28, cifar10: 3x32x32), balanced labels."""
    if like not in SHAPES:
        raise DataError(f"dataset.source.like={like!r} is not known; use one of {sorted(SHAPES)}")
    if num_classes < 2 or train < 1 or test < 1:
        raise DataError(
            f"synthetic data needs num_classes >= 2, train >= 1, test >= 1; got {num_classes}, {train}, {test}"
        )
    channels, height, width = SHAPES[like]
    generator = derive_generator(seed)
    coarse = torch.randn(num_classes, channels, height // 4, width // 4, generator=generator)
    templates = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    templates = templates / templates.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    scale = (1.0 + noise**2) ** -0.5  # keeps the pixel variance near 1, like normalized real data

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
        pixels = templates[labels] + noise * torch.randn(n, channels, height, width, generator=generator)
        return (pixels * scale).contiguous(), labels

    train_x, train_y = split(train)
    test_x, test_y = split(test)
    return TensorData(f"synthetic_{like}", train_x, train_y, test_x, test_y, num_classes)


def describe_synthetic(
    like: str = "mnist", train: int = 1024, test: int = 256, num_classes: int = 10, **_: object
) -> DatasetInfo:
    """What ``make_synthetic`` returns for these options, without generating it."""
    return DatasetInfo(SHAPES.get(like, SHAPES["mnist"]), num_classes, train, test)


make_synthetic.describe = describe_synthetic  # type: ignore[attr-defined]
