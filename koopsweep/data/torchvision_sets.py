"""MNIST and CIFAR-10 through torchvision, converted once to normalized float tensors.

torchvision does the download and the file checks; its uint8 arrays (``.data``) are converted in one vectorised
step instead of sample by sample. A missing dataset becomes one DataError line naming the files expected.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from koopsweep.data.info import fixed
from koopsweep.data.tensors import TensorData, normalize_uint8
from koopsweep.errors import DataError

log = logging.getLogger(__name__)

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel statistics of the 50,000 CIFAR-10 training images
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

MNIST_FILES = tuple(
    f"MNIST/raw/{split}-{kind}-idx{dims}-ubyte"
    for split in ("train", "t10k")
    for kind, dims in (("images", 3), ("labels", 1))
)
CIFAR10_FILES = tuple(
    f"cifar-10-batches-py/{name}" for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
)


def _open(
    dataset_cls: Callable[..., Any], name: str, root: Path, download: bool, files: Sequence[str]
) -> tuple[Any, Any]:
    """Both splits of a torchvision dataset, or a one-line DataError naming the expected files and the fixes.

    torchvision creates its folders before downloading; when the download fails, the folders this call created are
    removed again, so a mistyped or unreachable ``paths.data_dir`` leaves no empty tree behind.
    """
    created = _first_missing(root / files[0].split("/")[0])
    try:
        train = dataset_cls(str(root), train=True, download=download)
        return train, dataset_cls(str(root), train=False, download=download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, tarfile errors...
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        missing = [str(root / f) for f in files if not (root / f).is_file()]
        if missing:
            why = "download=false" if not download else f"the download failed: {_summary(exc)}"
            raise DataError(
                f"{name} not found in {root} ({why}); expected the files {', '.join(missing)}; "
                f"set paths.data_dir=<folder holding {files[0].split('/')[0]}/> (with internet, download=true fetches "
                f"them) or use dataset=mnist_mini, which ships with koopsweep"
            ) from None
        raise DataError(
            f"{name} files in {root} could not be read ({_summary(exc)}); delete them to download again"
        ) from None


def _first_missing(path: Path) -> Path | None:
    """The outermost folder on the way to ``path`` that does not exist yet (None when ``path`` exists)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _summary(exc: BaseException) -> str:
    """First and last line of an error (torchvision lists every mirror it tried in between)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: {lines[-1]}"
    return f"{type(exc).__name__}: {text}"


_IDX_TYPES = {0x08: np.uint8}  # the IDX type codes MNIST uses


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format: magic, dimensions, big-endian header, raw data) as a numpy array."""
    data = path.read_bytes()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; delete it to download MNIST again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(
            f"{path} is truncated ({body.size} of {int(np.prod(shape))} values); delete it to download again"
        )
    return body.reshape(shape)


def load_mnist(root: str | Path, download: bool = True) -> TensorData:
    """MNIST 60,000 / 10,000, 1x28x28, normalized with mean 0.1307 and std 0.3081.

    Files already in place are read directly (importing torchvision costs seconds in every process); torchvision
    is used to download them.
    """
    root = Path(root).expanduser()
    if all((root / f).is_file() for f in MNIST_FILES):
        arrays = [torch.from_numpy(read_idx(root / f).copy()) for f in MNIST_FILES]
        train_images, train_labels, test_images, test_labels = arrays
    else:
        from torchvision.datasets import MNIST

        train, test = _open(MNIST, "MNIST", root, download, MNIST_FILES)
        train_images, train_labels, test_images, test_labels = train.data, train.targets, test.data, test.targets
    return TensorData(
        name="mnist",
        train_x=normalize_uint8(train_images.unsqueeze(1), MNIST_MEAN, MNIST_STD),
        train_y=train_labels.to(torch.int64),
        test_x=normalize_uint8(test_images.unsqueeze(1), MNIST_MEAN, MNIST_STD),
        test_y=test_labels.to(torch.int64),
        num_classes=10,
    )


load_mnist.describe = fixed((1, 28, 28), 10, 60_000, 10_000)  # type: ignore[attr-defined]


CIFAR10_IMAGE_FOLDERS = ("CIFAR-10-images", "cifar10-images", "cifar-10-images")  # an image-folder copy's names


def find_cifar10_images(root: Path) -> Path | None:
    """An image-folder copy of CIFAR-10 under ``root`` (extracted, or one archive), when torchvision's is absent.

    torchvision's original files win when both are there, so adding an image folder never changes what a store's
    trunks were trained on.
    """
    if all((root / f).is_file() for f in CIFAR10_FILES):
        return None
    from koopsweep.data.image_folder import ARCHIVE_SUFFIXES

    for name in CIFAR10_IMAGE_FOLDERS:
        folder = root / name
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return folder
        archives = sorted(p for p in folder.glob("*") if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
        if archives:
            return archives[0]
    return None


def load_cifar10(root: str | Path, download: bool = True, cache_dir: str | Path | None = None) -> TensorData:
    """CIFAR-10 50,000 / 10,000, 3x32x32, normalized per channel with the training set's mean and std.

    Reads torchvision's files under ``root`` (downloading them when ``download``), or, when only an image-folder
    copy is there (``root/CIFAR-10-images/``, extracted or as an archive), that copy, decoded once into
    ``cache_dir``.
    """
    root = Path(root).expanduser()
    images_copy = find_cifar10_images(root)
    if images_copy is not None:
        from koopsweep.data.image_folder import load_image_folder

        log.info("CIFAR-10 read from the image folder %s", images_copy)
        data = load_image_folder(root, images_copy, "cifar10", CIFAR10_MEAN, CIFAR10_STD, cache_dir)
        if data.num_classes != 10 or len(data.train_x) != 50_000 or len(data.test_x) != 10_000:
            raise DataError(
                f"{images_copy} holds {len(data.train_x)} / {len(data.test_x)} images in {data.num_classes} classes, "
                "not CIFAR-10's 50,000 / 10,000 in 10: use dataset=image_folder for other data"
            )
        return data
    from torchvision.datasets import CIFAR10

    train, test = _open(CIFAR10, "CIFAR-10", root, download, CIFAR10_FILES)

    def images(split: Any) -> torch.Tensor:  # torchvision holds N x H x W x C uint8 numpy arrays
        return normalize_uint8(torch.from_numpy(split.data).permute(0, 3, 1, 2), CIFAR10_MEAN, CIFAR10_STD)

    return TensorData(
        name="cifar10",
        train_x=images(train),
        train_y=torch.as_tensor(train.targets, dtype=torch.int64),
        test_x=images(test),
        test_y=torch.as_tensor(test.targets, dtype=torch.int64),
        num_classes=10,
    )


load_cifar10.describe = fixed((3, 32, 32), 10, 50_000, 10_000)  # type: ignore[attr-defined]


def cifar10_identity(root: str | Path, download: bool = True, cache_dir: str | Path | None = None) -> str | None:
    """None for torchvision's original files (the ids of existing trunks stay), the content key of an image copy."""
    images_copy = find_cifar10_images(Path(root).expanduser())
    if images_copy is None:
        return None
    from koopsweep.data.image_folder import source_identity

    return source_identity(root, images_copy)


load_cifar10.identity = cifar10_identity  # type: ignore[attr-defined]
