"""Data: deterministic batching by (seed, iteration), balanced subsets, the shipped mnist_mini, real MNIST, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from koopsweep.data import (
    BatchStream,
    TensorData,
    load_dataset,
    load_mnist,
    load_mnist_mini,
    make_synthetic,
)
from koopsweep.data.mini import load_arrays
from koopsweep.data.torchvision_sets import MNIST_MEAN, MNIST_STD, load_cifar10, normalize_uint8
from koopsweep.errors import DataError
from koopsweep.models import LeNet300100

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MNIST_RAW = SHARED_DATA / "MNIST" / "raw"
needs_mnist = pytest.mark.skipif(not MNIST_RAW.is_dir(), reason=f"real MNIST not present at {MNIST_RAW}")
MNIST_MIN = -0.1307 / 0.3081  # a black pixel after normalization
MNIST_MAX = (1 - 0.1307) / 0.3081


def idx_images(name: str) -> np.ndarray:
    """Images straight from an IDX file (16-byte header), independent of torchvision and of the build script."""
    raw = np.fromfile(MNIST_RAW / name, dtype=np.uint8)
    return raw[16:].reshape(-1, 28, 28)


def indexed(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples whose label is their own index, so batches reveal exactly which samples they hold."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n)


# --- BatchStream ------------------------------------------------------------------------------------------------


def test_iterations_per_epoch_and_last_batch() -> None:
    x, y = indexed(60_000)
    stream = BatchStream(x, y, 128, seed=0)
    assert stream.iterations_per_epoch == len(stream) == 469
    assert len(stream.batch(0)[1]) == 128
    assert len(stream.batch(468)[1]) == 60_000 - 468 * 128 == 96
    assert len(stream.batch(469)[1]) == 128  # first batch of epoch 1
    assert [stream.epoch_of(i) for i in (0, 468, 469, 938)] == [0, 0, 1, 2]


def test_order_is_a_function_of_seed_and_epoch() -> None:
    x, y = indexed(1000)
    a, b = BatchStream(x, y, 100, seed=3), BatchStream(x, y, 100, seed=3)
    assert torch.equal(a.order(2), b.order(2))
    assert torch.equal(a.batch(25)[1], b.batch(25)[1])
    assert not torch.equal(a.order(0), a.order(1))
    assert not torch.equal(a.order(0), BatchStream(x, y, 100, seed=4).order(0))
    for epoch in range(3):  # every sample exactly once per epoch
        seen = torch.cat([a.batch(epoch * a.iterations_per_epoch + i)[1] for i in range(a.iterations_per_epoch)])
        assert torch.equal(seen.sort().values, y)
    # the same data order whatever the batch size: order depends on (seed, epoch) only
    assert torch.equal(BatchStream(x, y, 7, seed=3).order(1), a.order(1))


def test_random_access_equals_sequential_iteration() -> None:
    x, y = indexed(250)
    sequential = BatchStream(x, y, 32, seed=11)
    ipe = sequential.iterations_per_epoch
    expected = [sequential.batch(i) for i in range(3 * ipe)]  # in training order
    assert len(expected) == 3 * ipe == 24
    fresh = BatchStream(x, y, 32, seed=11)
    for iteration in torch.randperm(len(expected), generator=torch.Generator().manual_seed(0)).tolist():
        xb, yb = fresh.batch(iteration)
        assert torch.equal(yb, expected[iteration][1]) and torch.equal(xb, expected[iteration][0])
    resumed = BatchStream(x, y, 32, seed=11)  # a run restarted at iteration 13 sees what the first run saw
    assert all(torch.equal(resumed.batch(i)[1], expected[i][1]) for i in range(13, 24))
    assert torch.equal(resumed.batch(0)[0], x[resumed.batch(0)[1]])


def test_augmentation_is_a_function_of_seed_and_iteration() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32), torch.arange(64)
    a, b = BatchStream(x, y, 64, seed=5, augment=True), BatchStream(x, y, 64, seed=5, augment=True)
    xa, ya = a.batch(3)
    b.batch(7)  # touching other iterations first changes nothing
    assert torch.equal(xa, b.batch(3)[0]) and torch.equal(ya, b.batch(3)[1])
    assert xa.shape == (64, 3, 32, 32)
    # the same iteration asked again (a resumed run) is augmented the same way
    assert torch.equal(BatchStream(x, y, 64, seed=5, augment=True).batch(3)[0], xa)
    # another seed, or another iteration over the same samples, augments differently
    assert not torch.equal(xa, BatchStream(x, y, 64, seed=6, augment=True).batch(3)[0])
    xc, yc = a.batch(4)
    assert not torch.equal(xa[ya.argsort()], xc[yc.argsort()])


def test_augmentation_is_a_padded_crop_with_flip() -> None:
    torch.manual_seed(1)
    x, y = torch.randn(128, 3, 32, 32), torch.arange(128)
    xb, yb = BatchStream(x, y, 128, seed=0, augment=True).batch(0)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    found = []
    for image, label in zip(xb, yb):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(image, (lambda c: c.flip(-1) if flip else c)(padded[label, :, dy : dy + 32, dx : dx + 32]))
        ]
        assert matches, "every augmented image is a crop of the zero-padded original, maybe flipped"
        found.append(matches[0])
    flips = sum(f for _, _, f in found)
    assert 40 < flips < 88  # about half are flipped
    assert len({(dy, dx) for dy, dx, _ in found}) > 30  # offsets are spread over the 9 x 9 range


def test_no_augmentation_returns_the_samples_unchanged() -> None:
    x, y = torch.randn(50, 3, 8, 8), torch.arange(50)
    xb, yb = BatchStream(x, y, 16, seed=0).batch(5)
    assert torch.equal(xb, x[yb])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_stream_matches_cpu() -> None:
    x, y = torch.randn(300, 3, 32, 32), torch.arange(300)
    cpu = BatchStream(x, y, 64, seed=2, augment=True)
    gpu = BatchStream(x.cuda(), y.cuda(), 64, seed=2, augment=True)
    for iteration in (0, 4, 9):
        (xc, yc), (xg, yg) = cpu.batch(iteration), gpu.batch(iteration)
        assert xg.is_cuda and torch.equal(yc, yg.cpu()) and torch.equal(xc, xg.cpu())


def test_stream_rejects_bad_input() -> None:
    with pytest.raises(DataError):
        BatchStream(torch.zeros(3, 1), torch.zeros(2), 2, seed=0)
    with pytest.raises(DataError):
        BatchStream(torch.zeros(3, 1), torch.zeros(3), 0, seed=0)


# --- TensorData -------------------------------------------------------------------------------------------------


def _imbalanced() -> TensorData:
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1)
    return TensorData("toy", x, y, x.clone(), y.clone(), num_classes=3)


def test_subset_is_balanced_and_deterministic() -> None:
    data = _imbalanced()
    sub = data.subset(15, 10, seed=0)
    assert torch.bincount(sub.train_y).tolist() == [5, 5, 5]
    assert torch.bincount(sub.test_y, minlength=3).tolist() == [4, 3, 3]
    assert torch.equal(sub.train_x.flatten().long(), torch.sort(sub.train_x.flatten().long()).values)  # original order
    assert torch.equal(data.train_y[sub.train_x.flatten().long()], sub.train_y)  # x and y stay paired
    again = data.subset(15, 10, seed=0)
    assert torch.equal(again.train_x, sub.train_x) and torch.equal(again.test_x, sub.test_x)
    assert not torch.equal(data.subset(15, 10, seed=1).train_x, sub.train_x)
    # a class with too few samples gives its share to the others
    assert torch.bincount(data.subset(45, None).train_y).tolist() == [20, 20, 5]
    whole = data.subset(None, None)
    assert whole.train_x is data.train_x and whole.input_shape == (1, 1, 1)
    with pytest.raises(DataError, match="only 85"):
        data.subset(86, None)


def test_to_device_keeps_everything() -> None:
    data = _imbalanced().to("cpu")
    assert data.name == "toy" and data.num_classes == 3 and data.train_x.device.type == "cpu"


# --- sources ----------------------------------------------------------------------------------------------------


def test_mnist_mini_sizes_balance_and_normalization() -> None:
    data = load_mnist_mini()
    assert data.name == "mnist_mini" and data.num_classes == 10 and data.input_shape == (1, 28, 28)
    assert data.train_x.shape == (10_000, 1, 28, 28) and data.test_x.shape == (2_000, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert torch.bincount(data.train_y).tolist() == [1000] * 10
    assert torch.bincount(data.test_y).tolist() == [200] * 10
    assert math.isclose(data.train_x.min().item(), MNIST_MIN, rel_tol=1e-6)
    assert math.isclose(data.train_x.max().item(), MNIST_MAX, rel_tol=1e-6)
    assert abs(data.train_x.mean().item()) < 0.05 and abs(data.train_x.std().item() - 1) < 0.05
    asset = Path(__file__).resolve().parent.parent / "koopsweep" / "data" / "assets" / "mnist_mini.npz"
    assert asset.stat().st_size < 3_000_000


@needs_mnist
def test_mnist_mini_images_are_real_mnist_images() -> None:
    arrays = load_arrays()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        real = idx_images(f"{prefix}-images-idx3-ubyte")
        labels = np.fromfile(MNIST_RAW / f"{prefix}-labels-idx1-ubyte", dtype=np.uint8)[8:]
        index = arrays[f"{split}_index"]
        assert np.array_equal(arrays[f"{split}_x"], real[index])  # every image, via the recorded positions
        assert np.array_equal(arrays[f"{split}_y"], labels[index])
        assert np.all(np.diff(index) > 0)  # distinct, in file order
        for i in range(5):  # and the first images are found in the real file by content alone
            hits = np.flatnonzero((real == arrays[f"{split}_x"][i]).all(axis=(1, 2)))
            assert index[i] in hits


@pytest.fixture(scope="module")
def mnist() -> TensorData:
    if not MNIST_RAW.is_dir():
        pytest.skip(f"real MNIST not present at {MNIST_RAW}")
    return load_mnist(SHARED_DATA, download=False)


def test_load_mnist_real_files(mnist: TensorData) -> None:
    assert mnist.train_x.shape == (60_000, 1, 28, 28) and mnist.test_x.shape == (10_000, 1, 28, 28)
    assert mnist.train_y.dtype == torch.int64 and set(mnist.train_y.unique().tolist()) == set(range(10))
    # MNIST's mean 0.1307 and std 0.3081 are the training set's statistics: normalized, it has mean 0, std 1
    assert abs(mnist.train_x.mean().item()) < 1e-3
    assert abs(mnist.train_x.std().item() - 1) < 1e-3
    assert math.isclose(mnist.train_x.min().item(), MNIST_MIN, rel_tol=1e-6)
    first = torch.from_numpy(idx_images("t10k-images-idx3-ubyte")[:3].astype(np.float32))
    assert torch.allclose(mnist.test_x[:3, 0], (first / 255 - 0.1307) / 0.3081)
    assert torch.bincount(mnist.train_y)[5].item() == 5421  # the rarest digit


def test_mnist_read_directly_equals_torchvisions_reading(mnist: TensorData) -> None:
    """Files in place are read without torchvision (seconds of import per process): the same tensors."""
    from torchvision.datasets import MNIST

    train = MNIST(str(SHARED_DATA), train=True, download=False)
    assert torch.equal(mnist.train_y, train.targets)
    assert torch.equal(mnist.train_x, normalize_uint8(train.data.unsqueeze(1), MNIST_MEAN, MNIST_STD))


def test_idx_files_are_checked(tmp_path: Path) -> None:
    from koopsweep.data.torchvision_sets import read_idx

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte"
    good.write_bytes(b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes())
    assert np.array_equal(read_idx(good), images)
    cut = tmp_path / "cut-idx3-ubyte"
    cut.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(cut)
    other = tmp_path / "picture.gif"
    other.write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(other)


def test_mini_matches_full_mnist(mnist: TensorData) -> None:
    arrays, mini = load_arrays(), load_mnist_mini()
    index = torch.from_numpy(arrays["train_index"]).long()
    assert torch.equal(mini.train_x, mnist.train_x[index]) and torch.equal(mini.train_y, mnist.train_y[index])


def _assert_one_line_naming(exc: DataError, *fragments: str) -> None:
    text = str(exc)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_missing_mnist_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    files = [str(tmp_path / "MNIST" / "raw" / n) for n in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    _assert_one_line_naming(info.value, *files, "download=false", "paths.data_dir=", "dataset=mnist_mini")


def test_missing_cifar_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path, download=False)
    _assert_one_line_naming(info.value, str(tmp_path / "cifar-10-batches-py" / "data_batch_1"), "paths.data_dir=")


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import MNIST

    def offline(self: object) -> None:
        message = "Error downloading train-images-idx3-ubyte.gz:\nTried https://x/, got:\n<urlopen error down>\n"
        raise RuntimeError(message)

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=True)
    _assert_one_line_naming(info.value, "download failed", "<urlopen error down>", "train-labels-idx1-ubyte")


def test_synthetic_shapes_and_determinism() -> None:
    mnist_like = make_synthetic(like="mnist", train=100, test=30, seed=1)
    assert mnist_like.input_shape == (1, 28, 28)
    assert mnist_like.train_x.shape[0] == 100 and len(mnist_like.test_y) == 30
    assert torch.bincount(mnist_like.train_y).tolist() == [10] * 10
    assert abs(mnist_like.train_x.std().item() - 1) < 0.1
    assert torch.equal(make_synthetic(like="mnist", train=100, test=30, seed=1).train_x, mnist_like.train_x)
    assert not torch.equal(make_synthetic(like="mnist", train=100, test=30, seed=2).train_x, mnist_like.train_x)
    cifar_like = make_synthetic(like="cifar10", train=20, test=10, num_classes=4)
    assert cifar_like.train_x.shape == (20, 3, 32, 32) and cifar_like.num_classes == 4
    with pytest.raises(DataError, match="like"):
        make_synthetic(like="imagenet")


def test_synthetic_is_learnable() -> None:
    torch.manual_seed(0)
    data = make_synthetic(train=1024, test=256, seed=0)
    model = LeNet300100(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def accuracy() -> float:
        with torch.no_grad():
            return (model(data.test_x).argmax(1) == data.test_y).float().mean().item()

    before = accuracy()
    stream = BatchStream(data.train_x, data.train_y, 64, seed=0)
    for iteration in range(20):
        x, y = stream.batch(iteration)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    after = accuracy()
    assert before < 0.3 and after > 0.8, (before, after)


def test_load_dataset_calls_the_target(tmp_path: Path) -> None:
    target = "koopsweep.data.synthetic.make_synthetic"
    cfg = OmegaConf.create({"_target_": target, "like": "cifar10", "train": 40, "test": 20})
    data = load_dataset(cfg, tmp_path)
    assert data.input_shape == (3, 32, 32) and len(data.train_y) == 40
    assert load_dataset({"_target_": "koopsweep.data.mini.load_mnist_mini"}, tmp_path).name == "mnist_mini"


def test_load_dataset_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset({"_target_": "koopsweep.data.synthetic.make_synthetic", "trian": 10}, tmp_path)
    _assert_one_line_naming(info.value, "trian", "'train'")
    with pytest.raises(DataError) as info:
        load_dataset({"_target_": "koopsweep.data.nowhere.load"}, tmp_path)
    _assert_one_line_naming(info.value, "koopsweep.data.nowhere.load")
    with pytest.raises(DataError, match="_target_"):
        load_dataset({"download": True}, tmp_path)


def test_a_failed_download_leaves_no_folder_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision creates root/MNIST/raw before downloading: a mistyped data_dir must not stay behind as a tree."""
    from urllib.error import URLError

    import torchvision.datasets.mnist as tv_mnist

    def unreachable(url: str, **_: object) -> None:
        raise URLError("no route to host")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", unreachable)
    with pytest.raises(DataError, match="the download failed"):
        load_mnist(tmp_path / "typo" / "data", download=True)
    assert not (tmp_path / "typo").exists()
    existing = tmp_path / "data"
    (existing / "keep.txt").parent.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(DataError):
        load_mnist(existing, download=True)
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]  # only what this call created is removed
