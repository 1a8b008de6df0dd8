"""Build koopsweep/data/assets/mnist_mini.npz: a seeded, class-balanced 10,000/2,000 subset of real MNIST.

Reads the IDX files directly (no torchvision, no network) and writes the .npz byte-reproducibly: the same arrays
as ``np.savez_compressed`` but with fixed zip timestamps, so the printed md5 is the same on every rebuild.

    python scripts/build_mnist_mini.py --source /work/shared/data/MNIST/raw --out koopsweep/data/assets/mnist_mini.npz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format: magic, big-endian dims, data) as a numpy array."""
    raw = path.read_bytes()
    if raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise SystemExit(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=_IDX_TYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise SystemExit(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def balanced_choice(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of every class, returned in ascending (file) order."""
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def save_npz_reproducibly(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format with a fixed timestamp per member, so identical arrays give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with the four uncompressed IDX files")
    parser.add_argument("--out", type=Path, default=Path("koopsweep/data/assets/mnist_mini.npz"))
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images_file, labels_file = FILES[split]
        images, labels = read_idx(args.source / images_file), read_idx(args.source / labels_file)
        index = balanced_choice(labels, per_class, rng)
        arrays[f"{split}_x"] = images[index]
        arrays[f"{split}_y"] = labels[index]
        arrays[f"{split}_index"] = index.astype(np.int32)  # positions in the original files, for provenance
    save_npz_reproducibly(args.out, arrays)
    digest = hashlib.md5(args.out.read_bytes()).hexdigest()
    sizes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {sizes}")
    print(f"md5 {digest}")


if __name__ == "__main__":
    main()
