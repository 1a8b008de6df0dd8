"""Record a Koopman window in memory: float64 increments in one buffer, the Gram grown by one product per chunk.

A window that is fitted right after it is recorded, and then dropped (the default: only θ* and ĝ are kept), need
not touch the disk at all. Held as float64 increments w_l = z_l − z_{l−1} (exact for float32 snapshots), each
chunk of ``chunk_size`` snapshots adds its block row to the increment Gram with a single matrix product against
the whole buffer, ``W[:total] @ W[new]ᵀ``, with no conversion or re-reading of older snapshots; the fit's passes
are one product ``Wᵀ c`` each. The buffer lives on the training device (a GPU computes the Gram there).
Windows larger than the memory budget are recorded to disk instead (koopsweep.koopman.recorder).
"""

from __future__ import annotations

import os
import time

import torch

from koopsweep.koopman.gram import suffix_sums

DEFAULT_FRACTION = 0.4  # of the memory that is free when recording starts
MAX_BUDGET = 8 << 30


def memory_budget(device: torch.device) -> int:
    """Bytes a window may take in memory: 40 % of what is free now on ``device`` (at most 8 GiB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 1 << 30
    return int(min(free * DEFAULT_FRACTION, MAX_BUDGET))


def window_bytes(count: int, numel: int) -> int:
    """Memory a window of ``count`` snapshots of ``numel`` values takes as float64 increments."""
    return 8 * count * numel


class MemoryWindow:
    """A closed in-memory window: ``count`` snapshots of ``numel`` values as float64 increments, and their Gram."""

    def __init__(self, increments: torch.Tensor, increment_gram: torch.Tensor, layout_hash: str):
        self.increments = increments
        self.increment_gram = increment_gram
        self.layout_hash = layout_hash
        self.count, self.numel = int(increments.shape[0]), int(increments.shape[1])

    def combine(self, coeffs: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """Σ_i coeffs[i, :] z_i for real (T, k) coefficients, as Wᵀ·(suffix sums of coeffs): one product."""
        if coeffs.shape[0] != self.count:
            raise ValueError(f"coefficients cover {coeffs.shape[0]} snapshots but the window holds {self.count}")
        out = self.increments.T @ suffix_sums(coeffs).to(self.increments.device)
        return out if device is None else out.to(device)

    def snapshots(self) -> torch.Tensor:
        """The snapshots z_0 … z_{T−1} as float32 (tests and small windows)."""
        return self.increments.cumsum(0).to(torch.float32)

    def __repr__(self) -> str:
        return f"MemoryWindow({self.count} × {self.numel}, layout {self.layout_hash})"


class MemoryRecorder:
    """Append flat parameter vectors; ``close()`` returns the MemoryWindow. Same contract as SnapshotRecorder."""

    def __init__(
        self,
        layout_hash: str,
        numel: int,
        capacity: int,
        chunk_size: int = 64,
        device: torch.device | str | None = None,
    ):
        if capacity < 1 or numel < 1 or chunk_size < 1:
            raise ValueError(f"capacity, numel and chunk_size must be >= 1, got {capacity}, {numel}, {chunk_size}")
        self.layout_hash = layout_hash
        self.numel, self.capacity, self.chunk_size = int(numel), int(capacity), int(chunk_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.count = 0
        self.stats = {"gram_seconds": 0.0, "write_seconds": 0.0, "read_seconds": 0.0}
        self._buffer = torch.empty(self.capacity, self.numel, dtype=torch.float64, device=self.device)
        self._previous: torch.Tensor | None = None
        self._gram = torch.zeros(self.capacity, self.capacity, dtype=torch.float64)
        self._flushed = 0
        self._closed = False

    def append(self, vector: torch.Tensor) -> None:
        """Record one snapshot (any float dtype/device); its increment is exact for float32 snapshots."""
        if self._closed:
            raise RuntimeError("this MemoryRecorder is closed")
        if vector.numel() != self.numel:
            raise ValueError(f"snapshot has {vector.numel()} values, the window records {self.numel}")
        if self.count == self.capacity:
            raise RuntimeError(f"the window was sized for {self.capacity} snapshots")
        row = self._buffer[self.count]
        current = vector.detach().reshape(-1).to(device=self.device, dtype=torch.float64)
        if self._previous is None:
            row.copy_(current)
        else:
            torch.sub(current, self._previous, out=row)
        self._previous = current
        self.count += 1
        if self.count - self._flushed == self.chunk_size:
            self._grow_gram()

    def _grow_gram(self) -> None:
        """Add the block row of the rows not yet in the Gram: H[:total, new] = W[:total] · W[new]ᵀ, one product.

        On the training thread: a worker thread computing it beside training measured slower on a 2-core CPU
        (+17 % against +11 % of a 3-epoch MnistNet run), its matmul competing with training's for the cores.
        """
        start, total = self._flushed, self.count
        if start == total:
            return
        self._flushed = total
        tic = time.perf_counter()
        block = (self._buffer[:total] @ self._buffer[start:total].T).cpu()
        self._gram[:total, start:total] = block
        self._gram[start:total, :start] = block[:start].T
        self.stats["gram_seconds"] += time.perf_counter() - tic

    def close(self) -> MemoryWindow:
        """The recorded window (the buffer is handed over, not copied)."""
        if self._closed:
            raise RuntimeError("this MemoryRecorder is already closed")
        if self.count == 0:
            raise ValueError("no snapshots were recorded: the window is empty")
        self._grow_gram()
        self._closed = True
        count = self.count
        return MemoryWindow(self._buffer[:count], self._gram[:count, :count].clone(), self.layout_hash)
