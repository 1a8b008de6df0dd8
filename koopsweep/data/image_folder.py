"""Image-folder datasets (``train/<class>/*``, ``test/<class>/*``), from a folder or straight from a tar archive.

Decoding tens of thousands of small JPEGs takes tens of seconds, so the decoded uint8 images are kept in a cache
file keyed by the source's content (the archive's sha256, or the names and sizes of a folder's files) and checked
by its own sha256 on every read: the second run loads them in about a second, and a cache that fails its check is
rebuilt, never used. Class indices are the sorted class folder names (torchvision's ``ImageFolder`` convention,
which for CIFAR-10 is also its label order); samples are ordered by class, then by file name.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from koopsweep.artifacts import load_checked, save_checked
from koopsweep.data.tensors import TensorData, normalize_uint8
from koopsweep.errors import ArtifactError, DataError
from koopsweep.progress import progress

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CACHE_VERSION = 1


@dataclass(frozen=True)
class Member:
    """One image of the source: its split, class and name inside the folder or archive."""

    split: str
    label: str
    name: str


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _member(relative: PurePosixPath) -> Member | None:
    """The image at ``<prefix>/<split>/<class>/<file>``, or None for anything else (folders, READMEs)."""
    parts = relative.parts
    if len(parts) < 3 or parts[-3] not in SPLITS or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    return Member(parts[-3], parts[-2], str(relative))


def _sorted(members: Iterable[Member | None]) -> list[Member]:
    return sorted((m for m in members if m is not None), key=lambda m: (m.split, m.label, m.name))


def folder_members(folder: Path) -> list[Member]:
    """Every image of an extracted folder, sorted by split, class and name."""
    return _sorted(_member(PurePosixPath(p.relative_to(folder).as_posix())) for p in folder.rglob("*") if p.is_file())


def archive_images(archive: Path) -> dict[str, bytes]:
    """The encoded bytes of every image in an archive, by member name, read in one pass front to back (a compressed
    tar cannot seek backwards without decompressing again from the start): a few tens of MB for CIFAR-10."""
    encoded: dict[str, bytes] = {}
    with tarfile.open(archive, mode="r|*") as stream:
        for entry in stream:
            if entry.isfile() and _member(PurePosixPath(entry.name)) is not None:
                handle = stream.extractfile(entry)
                assert handle is not None
                encoded[entry.name] = handle.read()
    return encoded


def fingerprint(source: Path) -> str:
    """What the cache is keyed by: the archive's bytes, or the names, sizes and times of a folder's images (reading
    every image to hash it would cost what the cache saves)."""
    digest = hashlib.sha256()
    if is_archive(source):
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        for member in folder_members(source):
            stat = (source / member.name).stat()
            digest.update(f"{member.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _check_classes(source: Path, members: Sequence[Member]) -> list[str]:
    """The class names, the same in both splits; one line naming what is missing otherwise."""
    found = {split: sorted({m.label for m in members if m.split == split}) for split in SPLITS}
    for split in SPLITS:
        if not found[split]:
            raise DataError(
                f"{source} has no images under {split}/<class>/: an image folder needs train/<class>/<image> and "
                "test/<class>/<image> (extracted, or as a .tar/.tar.gz archive)"
            )
    if found["train"] != found["test"]:
        only_train = sorted(set(found["train"]) - set(found["test"]))
        only_test = sorted(set(found["test"]) - set(found["train"]))
        raise DataError(
            f"{source}: the splits have different classes (only in train: {only_train}, only in test: {only_test}); "
            "give every class images in both train/ and test/"
        )
    return found["train"]


def _images(source: Path) -> tuple[list[Member], Callable[[Member], bytes]]:
    """The source's images, sorted, and how to get each one's encoded bytes (from memory for an archive)."""
    if is_archive(source):
        encoded = archive_images(source)
        return _sorted(_member(PurePosixPath(name)) for name in encoded), lambda m: encoded.pop(m.name)
    return folder_members(source), lambda m: (source / m.name).read_bytes()


def _decode(source: Path, member: Member, data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"{source}: {member.name} cannot be read as an image ({type(exc).__name__}); remove or replace it"
        ) from None


def decode(source: Path, show_progress: bool | None = None) -> dict[str, object]:
    """Decode every image of the source into uint8 N x 3 x H x W arrays per split, with labels and class names."""
    members, read = _images(source)
    classes = _check_classes(source, members)
    index = {name: i for i, name in enumerate(classes)}
    images: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    labels: dict[str, list[int]] = {split: [] for split in SPLITS}
    shape: tuple[int, ...] | None = None
    bar = progress(total=len(members), desc=f"decoding {source.name}", enabled=show_progress)
    try:
        for member in members:
            pixels = _decode(source, member, read(member))
            if shape is None:
                shape = pixels.shape
            elif pixels.shape != shape:
                raise DataError(
                    f"{source}: {member.name} is {pixels.shape[1]}x{pixels.shape[0]} pixels, the first image "
                    f"{shape[1]}x{shape[0]}: resize the images to one size"
                )
            images[member.split].append(pixels)
            labels[member.split].append(index[member.label])
            bar.update(1)
    finally:
        bar.close()
    arrays: dict[str, object] = {"classes": classes}
    for split in SPLITS:
        stacked = np.stack(images[split]).transpose(0, 3, 1, 2)  # N x H x W x C -> N x C x H x W
        arrays[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(stacked))
        arrays[f"{split}_y"] = torch.tensor(labels[split], dtype=torch.int64)
    return arrays


def cached_decode(source: Path, cache_dir: Path | None, show_progress: bool | None = None) -> dict[str, object]:
    """``decode(source)`` through a content-keyed, checksummed cache in ``cache_dir`` (None: no cache)."""
    if cache_dir is None:
        return decode(source, show_progress)
    key = fingerprint(source)
    path = Path(cache_dir).expanduser() / f"image-folder-{source.name}-{key}-v{CACHE_VERSION}.pt"
    if path.exists():
        try:
            return load_checked(path, expect={"fingerprint": key, "version": CACHE_VERSION})
        except ArtifactError as exc:
            log.warning("%s; decoding the images again", exc)
    arrays = decode(source, show_progress)
    try:
        save_checked(path, arrays, {"fingerprint": key, "version": CACHE_VERSION, "source": str(source)})
    except OSError as exc:  # a read-only or full cache folder costs the next run the decoding, not this one
        log.warning(
            "could not write the decoded-image cache %s (%s); set paths.cache_dir to a writable folder", path, exc
        )
    return arrays


def channel_statistics(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images in [0, 1] units (float64 sums, in chunks)."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
    count = images.numel() / channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def resolve_source(root: str | Path, path: str | Path) -> Path:
    """``path`` (absolute, or relative to ``root`` = paths.data_dir) as an existing folder or archive."""
    if str(path) in ("", "???"):
        raise DataError(
            "dataset.source.path is not set: give the folder (or .tar/.tar.gz archive) holding train/<class>/<image> "
            "and test/<class>/<image>, e.g. dataset.source.path=/data/my_images"
        )
    source = Path(path).expanduser()
    source = source if source.is_absolute() else Path(root).expanduser() / source
    if not source.exists():
        raise DataError(
            f"image folder {source} does not exist: set dataset.source.path to a folder (or .tar/.tar.gz archive) "
            "holding train/<class>/<image> and test/<class>/<image>, absolute or relative to paths.data_dir"
        )
    return source


def load_image_folder(
    root: str | Path,
    path: str | Path,
    name: str = "image_folder",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
) -> TensorData:
    """A ``train/<class>``, ``test/<class>`` image folder or archive as normalized tensors.

    ``mean``/``std`` (per channel, in [0, 1] units) default to the training split's own statistics.
    ``download`` is accepted for a common signature with torchvision's loaders and ignored.
    """
    source = resolve_source(root, path)
    arrays = cached_decode(source, Path(cache_dir) if cache_dir else None)
    train_x, test_x = arrays["train_x"], arrays["test_x"]
    assert isinstance(train_x, torch.Tensor) and isinstance(test_x, torch.Tensor)
    if mean is None or std is None:
        computed_mean, computed_std = channel_statistics(train_x)
        mean, std = mean or computed_mean, std or computed_std
    if len(mean) != train_x.shape[1] or len(std) != train_x.shape[1]:
        raise DataError(
            f"dataset.source.mean/std give {len(mean)}/{len(std)} values for images with {train_x.shape[1]} "
            "channels: give one per channel, or leave them out to use the training split's statistics"
        )
    classes = arrays["classes"]
    assert isinstance(classes, list)
    train_y, test_y = arrays["train_y"], arrays["test_y"]
    assert isinstance(train_y, torch.Tensor) and isinstance(test_y, torch.Tensor)
    return TensorData(
        name=name,
        train_x=normalize_uint8(train_x, mean, std),
        train_y=train_y,
        test_x=normalize_uint8(test_x, mean, std),
        test_y=test_y,
        num_classes=len(classes),
    )


@functools.lru_cache(maxsize=8)
def _identity(source: Path, size: int, mtime_ns: int) -> str:
    return f"image_folder:{fingerprint(source)}"


def source_identity(root: str | Path, path: str | Path, **_: object) -> str:
    """The content key of an image folder, part of the trunk id: another copy of the data is another trunk."""
    source = resolve_source(root, path)
    stat = source.stat()
    return _identity(source, stat.st_size, stat.st_mtime_ns)


load_image_folder.identity = source_identity  # type: ignore[attr-defined]
