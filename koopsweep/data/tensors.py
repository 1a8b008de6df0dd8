"""Datasets held as tensors and batched by indexing: MNIST and CIFAR fit in memory, so no per-sample DataLoader.

The order of every batch is a pure function of (seed, iteration), which makes a resumed run see exactly the
batches an uninterrupted one would, on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from koopsweep.errors import DataError

_ORDER, _AUGMENT, _TRAIN_SUBSET, _TEST_SUBSET = 0, 1, 2, 3  # stream tags: independent generators per purpose


def derive_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by mixing integer keys (SeedSequence), so nearby (seed, epoch) pairs do not collide."""
    state = np.random.SeedSequence([k % 2**64 for k in keys]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def balanced_indices(labels: torch.Tensor, size: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` indices with per-class counts as equal as the data allows, in ascending (original) order."""
    if size > len(labels):
        raise DataError(f"asked for {size} samples but the split has only {len(labels)}; lower the subset size")
    pools = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    pools = [pool[torch.randperm(len(pool), generator=generator)] for pool in pools]
    quota = [size // num_classes + (c < size % num_classes) for c in range(num_classes)]
    # Classes with too few samples give their deficit to the others, one sample at a time, round robin.
    deficit = sum(max(q - len(p), 0) for q, p in zip(quota, pools))
    quota = [min(q, len(p)) for q, p in zip(quota, pools)]
    while deficit:
        for c in range(num_classes):
            if deficit and quota[c] < len(pools[c]):
                quota[c] += 1
                deficit -= 1
    chosen = torch.cat([pool[:q] for pool, q in zip(pools, quota)])
    return chosen.sort().values


def normalize_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images N x C x H x W -> float32 (x / 255 - mean) / std per channel."""
    shape = (1, len(mean), 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32).view(shape)
    return images.to(torch.float32).div_(255.0).sub_(mean_t).div_(std_t).contiguous()


@dataclass
class TensorData:
    """A whole dataset as normalized float tensors (N x C x H x W) and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def subset(self, train_size: int | None, test_size: int | None, seed: int = 0) -> TensorData:
        """Class-balanced, deterministic subsets (None keeps a split whole); kept samples stay in original order."""
        train_x, train_y, test_x, test_y = self.train_x, self.train_y, self.test_x, self.test_y
        if train_size is not None:
            keep = balanced_indices(train_y.cpu(), train_size, self.num_classes, derive_generator(seed, _TRAIN_SUBSET))
            train_x, train_y = train_x[keep.to(train_x.device)], train_y[keep.to(train_y.device)]
        if test_size is not None:
            keep = balanced_indices(test_y.cpu(), test_size, self.num_classes, derive_generator(seed, _TEST_SUBSET))
            test_x, test_y = test_x[keep.to(test_x.device)], test_y[keep.to(test_y.device)]
        return TensorData(self.name, train_x, train_y, test_x, test_y, self.num_classes)

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(
            self.name,
            self.train_x.to(device),
            self.train_y.to(device),
            self.test_x.to(device),
            self.test_y.to(device),
            self.num_classes,
        )


class BatchStream:
    """Training batches by absolute iteration: epoch e is a permutation drawn from (seed, e), cached while in use.

    ``augment`` adds the standard CIFAR augmentation (random crop after 4-pixel zero padding, in normalized
    space, and horizontal flip), vectorised over the batch with randomness drawn from (seed, iteration).
    """

    pad: int = 4

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, augment: bool = False) -> None:
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"BatchStream needs as many labels as inputs (> 0), got {len(x)} inputs, {len(y)} labels")
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.iterations_per_epoch = math.ceil(len(x) / batch_size)
        self._epoch: int | None = None
        self._order: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.iterations_per_epoch

    def epoch_of(self, iteration: int) -> int:
        return iteration // self.iterations_per_epoch

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of sample indices for ``epoch`` (drawn on the CPU, so every device sees the same)."""
        if epoch != self._epoch:
            perm = torch.randperm(len(self.x), generator=derive_generator(self.seed, _ORDER, epoch))
            self._order, self._epoch = perm.to(self.x.device), epoch
        assert self._order is not None
        return self._order

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) batch of absolute iteration ``iteration`` (the last batch of an epoch may be smaller)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        epoch, position = divmod(iteration, self.iterations_per_epoch)
        index = self.order(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        x, y = self.x.index_select(0, index), self.y.index_select(0, index)
        if self.augment:
            x = self._augment(x, iteration)
        return x, y

    def _augment(self, x: torch.Tensor, iteration: int) -> torch.Tensor:
        """Random crop of the zero-padded images plus horizontal flip, one gather for the whole batch."""
        n, channels, height, width = x.shape
        generator = derive_generator(self.seed, _AUGMENT, iteration)
        shifts = torch.randint(0, 2 * self.pad + 1, (2, n), generator=generator).to(x.device)
        flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        padded = F.pad(x, (self.pad,) * 4)
        rows = shifts[0, :, None] + torch.arange(height, device=x.device)
        cols = shifts[1, :, None] + torch.arange(width, device=x.device)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(channels, device=x.device)[None, :, None, None]
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
