"""mnist_mini: a real, class-balanced 10,000 / 2,000 subset of MNIST shipped inside the package.

It lets every run, test and tutorial work without a download or torchvision's dataset classes. Built by
``scripts/build_mnist_mini.py`` (seeded; the file also records each image's position in the original MNIST files).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from koopsweep.data.info import fixed
from koopsweep.data.tensors import TensorData
from koopsweep.data.torchvision_sets import MNIST_MEAN, MNIST_STD, normalize_uint8
from koopsweep.errors import DataError

ASSET = "mnist_mini.npz"


def load_arrays() -> dict[str, np.ndarray]:
    """The raw uint8 images, labels and source indices stored in the packaged file."""
    resource = resources.files("koopsweep.data").joinpath("assets", ASSET)
    try:
        with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(
            f"the packaged file koopsweep/data/assets/{ASSET} is missing or unreadable ({exc}); reinstall koopsweep or "
            "rebuild it: python scripts/build_mnist_mini.py --source <MNIST/raw folder>"
        ) from None


def load_mnist_mini(root: str | Path | None = None, download: bool = False) -> TensorData:
    """The packaged subset normalized like MNIST; ``root`` and ``download`` are accepted and ignored."""
    arrays = load_arrays()

    def images(key: str) -> torch.Tensor:
        return normalize_uint8(torch.from_numpy(arrays[key]).unsqueeze(1), MNIST_MEAN, MNIST_STD)

    return TensorData(
        name="mnist_mini",
        train_x=images("train_x"),
        train_y=torch.from_numpy(arrays["train_y"]).to(torch.int64),
        test_x=images("test_x"),
        test_y=torch.from_numpy(arrays["test_y"]).to(torch.int64),
        num_classes=10,
    )


load_mnist_mini.describe = fixed((1, 28, 28), 10, 10_000, 2_000)  # type: ignore[attr-defined]
