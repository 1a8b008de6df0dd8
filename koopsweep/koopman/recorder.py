"""Record the parameter trajectory of a Koopman window while training, with its float64 Gram built on the way.

Snapshots are buffered as float32 (never fp16/bf16: per-step changes are below their resolution) in a chunk of
``chunk_size`` rows. When the chunk is full it is written atomically and the increment Gram (see
koopsweep.koopman.gram) grows by one block row: the chunk against itself and against every older chunk, as
float64 matmuls over column blocks. Older chunks are kept in memory while they fit ``cache_bytes`` and are read
back from disk otherwise (once per flushed chunk), so the recorder holds at most the current chunk, one old chunk
and the cache. At pruning time the Gram is already there: the fit needs only small dense algebra and one pass
over the chunks per batch of modes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from koopsweep.atomic import atomic_write, write_json_atomic
from koopsweep.koopman.chunkfile import read_header, read_rows, write_chunk
from koopsweep.koopman.gram import column_slices, increments, scratch
from koopsweep.koopman.memory import MemoryRecorder, MemoryWindow
from koopsweep.koopman.window import FORMAT, GRAM_FILE, MANIFEST, VERSION, SnapshotWindow

log = logging.getLogger(__name__)

__all__ = ["SnapshotHook", "SnapshotRecorder"]


class SnapshotRecorder:
    """Append flat parameter vectors; ``close()`` writes the Gram and manifest and returns the SnapshotWindow."""

    def __init__(
        self,
        directory: str | Path,
        layout_hash: str,
        numel: int,
        chunk_size: int = 64,
        cache_bytes: int = 256 << 20,
        device: torch.device | str | None = None,
    ):
        if chunk_size < 1 or numel < 1:
            raise ValueError(f"chunk_size and numel must be >= 1, got {chunk_size}, {numel}")
        self.directory = Path(directory)
        self.layout_hash = layout_hash
        self.numel = int(numel)
        self.chunk_size = int(chunk_size)
        self.cache_bytes = int(cache_bytes)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.count = 0
        self.stats = {"gram_seconds": 0.0, "write_seconds": 0.0, "read_seconds": 0.0}
        self._buffer: torch.Tensor | None = None
        self._fill = 0
        self._entries: list[dict] = []
        self._last_rows: list[torch.Tensor] = []  # last snapshot of each flushed chunk (increment boundaries)
        self._cache: dict[int, torch.Tensor] = {}
        self._cached = 0
        self._gram = torch.zeros(0, 0, dtype=torch.float64)
        self._closed = False
        self._clear_directory()

    def _clear_directory(self) -> None:
        """Remove a previous recording in this folder, manifest first, so no stale window can be opened."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MANIFEST).unlink(missing_ok=True)
        (self.directory / GRAM_FILE).unlink(missing_ok=True)
        for pattern in ("chunk_*.bin", ".chunk_*.tmp", f".{GRAM_FILE}.*.tmp", f".{MANIFEST}.*.tmp"):
            for path in self.directory.glob(pattern):
                path.unlink()

    def append(self, vector: torch.Tensor) -> None:
        """Record one snapshot (any float dtype/device; stored as float32)."""
        if self._closed:
            raise RuntimeError("this SnapshotRecorder is closed")
        if vector.numel() != self.numel:
            raise ValueError(f"snapshot has {vector.numel()} values, the window records {self.numel}")
        if self._buffer is None:
            self._buffer = torch.empty(self.chunk_size, self.numel, dtype=torch.float32)
        self._buffer[self._fill].copy_(vector.detach().reshape(-1))
        self._fill += 1
        self.count += 1
        if self._fill == self.chunk_size:
            self._flush()

    def _flush(self) -> None:
        if self._fill == 0:
            return
        assert self._buffer is not None
        rows = self._buffer[: self._fill]
        index = len(self._entries)
        start = self.count - self._fill
        tic = time.perf_counter()
        entry = write_chunk(self.directory / f"chunk_{index:05d}.bin", rows, self.layout_hash, start)
        self.stats["write_seconds"] += time.perf_counter() - tic
        self._grow_gram(rows, start)
        self._entries.append(entry)
        self._last_rows.append(rows[-1].clone())
        if self._cached + rows.numel() * 4 <= self.cache_bytes:
            self._cache[index] = rows.clone()
            self._cached += rows.numel() * 4
        self._fill = 0

    def _old_chunk(self, index: int) -> torch.Tensor:
        if index in self._cache:
            return self._cache[index]
        tic = time.perf_counter()
        entry = self._entries[index]
        path = self.directory / entry["file"]
        _, offset = read_header(path)
        rows = read_rows(path, offset, self.numel, 0, entry["rows"], entry["sha256"])
        self.stats["read_seconds"] += time.perf_counter() - tic
        return rows

    def _grow_gram(self, rows: torch.Tensor, start: int) -> None:
        """Add the block row of the new chunk to the increment Gram: H[:, new] = W_old/new · W_newᵀ."""
        tic = time.perf_counter()
        n_new = rows.shape[0]
        total = start + n_new
        block = torch.zeros(total, n_new, dtype=torch.float64, device=self.device)
        prev_new = self._last_rows[-1] if self._last_rows else None
        cur = rows.to(self.device)
        sources = [(i, e["start"]) for i, e in enumerate(self._entries)] + [(None, start)]
        read_tic = self.stats["read_seconds"]
        rows_max = max([e["rows"] for e in self._entries] + [n_new])
        buf_new, buf_old = scratch(rows_max, self.numel, self.device), scratch(rows_max, self.numel, self.device)
        for index, first in sources:
            old = cur if index is None else self._old_chunk(index).to(self.device)
            prev_old = (self._last_rows[index - 1] if index else None) if index is not None else prev_new
            for cols in column_slices(self.numel, rows_max):
                w_new = increments(cur[:, cols], None if prev_new is None else prev_new[cols], buf_new)
                w_old = (
                    w_new
                    if index is None
                    else increments(old[:, cols], None if prev_old is None else prev_old[cols], buf_old)
                )
                block[first : first + old.shape[0]] += w_old @ w_new.T
        block = block.cpu()
        gram = torch.zeros(total, total, dtype=torch.float64)
        gram[:start, :start] = self._gram
        gram[:, start:] = block
        gram[start:, :start] = block[:start].T
        self._gram = gram
        self.stats["gram_seconds"] += time.perf_counter() - tic - (self.stats["read_seconds"] - read_tic)

    def close(self) -> SnapshotWindow:
        """Flush, write the Gram and the manifest (last, atomically) and return the verified-on-write window."""
        if self._closed:
            raise RuntimeError("this SnapshotRecorder is already closed")
        if self.count == 0:
            raise ValueError("no snapshots were recorded: the window is empty")
        self._flush()
        self._closed = True
        data = memoryview(self._gram.contiguous().numpy()).cast("B")
        atomic_write(self.directory / GRAM_FILE, data)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "layout_hash": self.layout_hash,
            "numel": self.numel,
            "count": self.count,
            "dtype": "float32",
            "chunk_size": self.chunk_size,
            "gram": {"file": GRAM_FILE, "kind": "increments", "sha256": hashlib.sha256(data).hexdigest()},
            "chunks": self._entries,
        }
        write_json_atomic(self.directory / MANIFEST, manifest)
        log.info("recorded %d snapshots of %d values in %s (%s)", self.count, self.numel, self.directory, self.stats)
        self._cache.clear()
        self._buffer = None
        window = SnapshotWindow(self.directory, manifest, self._gram, set(range(len(self._entries))))
        window._check_chunks()
        return window


class SnapshotHook:
    """Records θ at absolute iterations start, start+stride, … ≤ end; the trainer calls it after every step.

    ``maybe_record(iteration, vector_fn)`` evaluates ``vector_fn`` only for iterations in the window, so calling
    it every step costs nothing outside the window. Call it once at the window start too (θ before the first
    step of the window). A repeated iteration is ignored; one going backwards is an error (a resumed run must
    record the window again).
    """

    def __init__(self, recorder: SnapshotRecorder | MemoryRecorder, start: int, end: int, stride: int = 1):
        if stride < 1 or end < start or start < 0:
            raise ValueError(f"need 0 <= start <= end and stride >= 1, got start={start}, end={end}, stride={stride}")
        self.recorder = recorder
        self.start, self.end, self.stride = int(start), int(end), int(stride)
        self._last: int | None = None

    @property
    def expected_count(self) -> int:
        """Snapshots a complete window holds."""
        return (self.end - self.start) // self.stride + 1

    def wants(self, iteration: int) -> bool:
        """Whether ``iteration`` is a recording point of the window."""
        return self.start <= iteration <= self.end and (iteration - self.start) % self.stride == 0

    def maybe_record(self, iteration: int, vector_fn: Callable[[], torch.Tensor]) -> bool:
        """Record ``vector_fn()`` if ``iteration`` is a recording point not yet recorded; True when it did."""
        if self._last is not None and iteration < self._last:
            raise RuntimeError(
                f"snapshot iteration went back from {self._last} to {iteration}: record the window again from its start"
            )
        if not self.wants(iteration) or iteration == self._last:
            return False
        self.recorder.append(vector_fn())
        self._last = iteration
        return True

    @property
    def complete(self) -> bool:
        """True once the last recording point (≤ end) has been recorded."""
        return self.recorder.count == self.expected_count

    def close(self) -> SnapshotWindow | MemoryWindow:
        """Close the recorder; warns when the window was not recorded completely."""
        if not self.complete:
            log.warning(
                "snapshot window [%d, %d] stride %d holds %d of %d snapshots",
                self.start,
                self.end,
                self.stride,
                self.recorder.count,
                self.expected_count,
            )
        return self.recorder.close()
