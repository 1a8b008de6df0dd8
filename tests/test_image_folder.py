"""Image-folder datasets: folders and archives read alike, a checked content-keyed cache, one line for bad input."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from koopsweep.data import image_folder, source_identity
from koopsweep.data.image_folder import cached_decode, load_image_folder
from koopsweep.data.torchvision_sets import find_cifar10_images, load_cifar10
from koopsweep.errors import DataError

CLASSES = ("cat", "ant", "bee")  # not in sorted order on purpose: indices follow the sorted names


def make_folder(root: Path, per_class: dict[str, int] | None = None, size: int = 8) -> dict[str, np.ndarray]:
    """train/<class>/<n>.png and test/<class>/<n>.png of random pixels (PNG: lossless, so pixels compare exactly)."""
    rng = np.random.default_rng(0)
    pixels = {}
    counts = per_class or {"train": 4, "test": 2}
    for split, count in counts.items():
        for label in CLASSES:
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for n in range(count):
                array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(array).save(root / split / label / f"{n:03d}.png")
                pixels[f"{split}/{label}/{n:03d}.png"] = array
    return pixels


def make_archive(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for split in ("test", "train"):  # members in another order than the sorted one
            archive.add(folder / split, arcname=f"data/{split}")
    return target


def test_folder_is_read_by_sorted_class_and_name_with_exact_pixels(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "imgs")
    data = load_image_folder(tmp_path, "imgs", mean=(0, 0, 0), std=(1, 1, 1))
    assert data.num_classes == 3 and data.train_x.shape == (12, 3, 8, 8) and data.test_x.shape == (6, 3, 8, 8)
    assert data.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # ant, bee, cat
    expected = torch.from_numpy(pixels["train/bee/002.png"]).permute(2, 0, 1).float() / 255
    assert torch.equal(data.train_x[6], expected)


def test_normalisation_defaults_to_the_training_splits_statistics(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    data = load_image_folder(tmp_path, tmp_path / "imgs")
    per_channel = data.train_x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-4)


def test_an_archive_gives_the_same_tensors_as_the_folder(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    archive = make_archive(tmp_path / "imgs", tmp_path / "imgs.tar.gz")
    from_folder = load_image_folder(tmp_path, "imgs", mean=(0.5,) * 3, std=(0.25,) * 3)
    from_archive = load_image_folder(tmp_path, archive, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert torch.equal(from_folder.train_x, from_archive.train_x) and torch.equal(
        from_folder.test_y, from_archive.test_y
    )


def test_the_cache_is_used_the_second_time_and_rebuilt_when_damaged(tmp_path: Path, monkeypatch, caplog) -> None:
    make_folder(tmp_path / "imgs")
    source, cache = tmp_path / "imgs", tmp_path / "cache"
    first = cached_decode(source, cache)
    (cached,) = cache.glob("*.pt")
    real_decode = image_folder.decode
    monkeypatch.setattr(image_folder, "decode", lambda *a, **k: pytest.fail("decoded again despite a good cache"))
    assert torch.equal(cached_decode(source, cache)["train_x"], first["train_x"])
    cached.write_bytes(cached.read_bytes()[:-100])  # cut short, as a crash or a full disk would leave it
    calls = []
    monkeypatch.setattr(image_folder, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    with caplog.at_level(logging.WARNING):
        again = cached_decode(source, cache)
    assert calls == [1] and "checksum mismatch" in caplog.text
    assert torch.equal(again["train_x"], first["train_x"])
    assert torch.equal(cached_decode(source, cache)["train_x"], first["train_x"]) and calls == [1]  # rewritten


def test_a_cache_missing_its_checksum_is_not_trusted(tmp_path: Path, monkeypatch) -> None:
    make_folder(tmp_path / "imgs")
    cached_decode(tmp_path / "imgs", tmp_path / "cache")
    (sidecar,) = (tmp_path / "cache").glob("*.sha256")
    sidecar.unlink()  # a write killed between the file and its checksum
    calls = []
    real_decode = image_folder.decode
    monkeypatch.setattr(image_folder, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    cached_decode(tmp_path / "imgs", tmp_path / "cache")
    assert calls == [1]


def test_changed_images_are_decoded_again(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    first = cached_decode(tmp_path / "imgs", tmp_path / "cache")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "train" / "ant" / "000.png")
    second = cached_decode(tmp_path / "imgs", tmp_path / "cache")
    assert not torch.equal(first["train_x"], second["train_x"]) and second["train_x"][0].sum() == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: None, "does not exist"),
        ("unset", "dataset.source.path is not set"),
        (lambda root: make_folder(root / "imgs", {"train": 2}), "no images under test/<class>/"),
        (lambda root: (make_folder(root / "imgs"), _remove(root / "imgs" / "test" / "bee")), "only in train: ['bee']"),
        (lambda root: (make_folder(root / "imgs"), _garbage(root / "imgs" / "test" / "cat" / "bad.jpg")), "bad.jpg"),
        (lambda root: (make_folder(root / "imgs"), _odd_size(root / "imgs" / "train" / "ant" / "odd.png")), "odd.png"),
    ],
    ids=["missing", "unset", "no-test-split", "class-missing", "unreadable", "other-size"],
)
def test_bad_folders_are_one_line_naming_the_problem(tmp_path: Path, damage, message: str) -> None:
    if damage == "unset":  # the config's ??? placeholder left as it is
        path = "???"
    else:
        damage(tmp_path)
        path = "imgs"
    with pytest.raises(DataError) as error:
        load_image_folder(tmp_path, path)
    assert message in str(error.value) and "\n" not in str(error.value)


def _remove(folder: Path) -> None:
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


def _garbage(path: Path) -> None:
    path.write_bytes(b"not an image")


def _odd_size(path: Path) -> None:
    Image.fromarray(np.zeros((9, 8, 3), dtype=np.uint8)).save(path)


def test_cifar10_finds_an_image_copy_only_when_torchvisions_files_are_absent(tmp_path: Path) -> None:
    make_folder(tmp_path / "CIFAR-10-images")
    assert find_cifar10_images(tmp_path) == tmp_path / "CIFAR-10-images"
    with pytest.raises(DataError, match="not CIFAR-10's 50,000 / 10,000"):  # a tiny folder is not CIFAR-10
        load_cifar10(tmp_path, download=False)
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"):
        (batches / name).write_bytes(b"")
    assert find_cifar10_images(tmp_path) is None  # the original wins


def test_a_copy_of_the_data_is_another_trunk_and_the_cache_folder_is_not(tmp_path: Path, make_cfg) -> None:
    from koopsweep.store import trunk_id

    make_folder(tmp_path / "imgs")
    make_archive(tmp_path / "imgs", tmp_path / "imgs.tar.gz")
    base = ["dataset=image_folder", f"paths.data_dir={tmp_path}"]
    folder = trunk_id(make_cfg([*base, "dataset.source.path=imgs"]))
    assert folder == trunk_id(make_cfg([*base, "dataset.source.path=imgs", f"paths.cache_dir={tmp_path}/elsewhere"]))
    assert folder != trunk_id(make_cfg([*base, "dataset.source.path=imgs.tar.gz"]))
    assert source_identity({"_target_": "koopsweep.data.load_mnist_mini"}, tmp_path) is None


def test_a_run_trains_on_a_users_image_folder(tmp_path: Path, make_cfg) -> None:
    from koopsweep.train.run import run_experiment

    make_folder(tmp_path / "imgs", {"train": 16, "test": 4}, size=16)
    results = run_experiment(
        make_cfg([
            "dataset=image_folder", f"paths.data_dir={tmp_path}", "dataset.source.path=imgs", "dataset.batch_size=16",
            "dataset.augment=true", "model=mnistnet", "schedule.train=2ep", "pruner=gmp", "pruner.fraction=0.5",
        ])
    )  # fmt: skip
    assert results["status"] == "finished" and results["metrics"]["mask/fraction"] == 0.5
    assert any((tmp_path / "cache").glob("image-folder-imgs-*.pt"))
