"""A recorded snapshot window on disk: chunk files, the float64 increment Gram and a manifest, all verified.

The manifest is written last (atomically), so a folder without one is an interrupted recording and is refused.
Every chunk's size and header are checked when the window is opened; checksums are checked at open
(``verify="full"``, the default) or on the first read of each chunk (``verify="lazy"``) — data that does not
verify is never used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from koopsweep.errors import ArtifactError
from koopsweep.koopman.chunkfile import read_header, read_rows
from koopsweep.koopman.gram import raw_gram

MANIFEST = "manifest.json"
GRAM_FILE = "gram.bin"
FORMAT = "koopsweep-snapshots"
VERSION = 1


def _fail(directory: Path, what: str) -> ArtifactError:
    return ArtifactError(f"snapshot window {directory}: {what}; delete it and record the window again")


class SnapshotWindow:
    """Read access to a closed window: ``count`` snapshots of ``numel`` float32 values and their Gram."""

    def __init__(self, directory: Path, manifest: dict[str, Any], inc_gram: torch.Tensor, verified: set[int]):
        self.directory = Path(directory)
        self.manifest = manifest
        self.layout_hash: str = manifest["layout_hash"]
        self.numel: int = int(manifest["numel"])
        self.count: int = int(manifest["count"])
        self.chunk_size: int = int(manifest["chunk_size"])
        self.increment_gram = inc_gram
        self._chunks: list[dict[str, Any]] = manifest["chunks"]
        self._verified = verified

    # ----------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, directory: str | Path, expected_layout_hash: str | None, verify: str = "full") -> SnapshotWindow:
        """Open and verify a window; ``expected_layout_hash`` None skips the layout check (inspection only)."""
        if verify not in ("full", "lazy"):
            raise ValueError(f"verify must be 'full' or 'lazy', got {verify!r}")
        directory = Path(directory)
        manifest = cls._read_manifest(directory)
        if expected_layout_hash is not None and manifest["layout_hash"] != expected_layout_hash:
            raise ArtifactError(
                f"snapshot window {directory} was recorded for parameter layout {manifest['layout_hash']}, "
                f"expected {expected_layout_hash}: the model or prunable set changed; record the window again"
            )
        window = cls(directory, manifest, cls._read_gram(directory, manifest), set())
        window._check_chunks()
        if verify == "full":
            window.verify()
        return window

    @staticmethod
    def _read_manifest(directory: Path) -> dict[str, Any]:
        path = directory / MANIFEST
        if not path.is_file():
            raise _fail(directory, f"no {MANIFEST} (the recording never finished)")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(directory, f"{MANIFEST} is unreadable ({exc.__class__.__name__})") from None
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise _fail(directory, f"{MANIFEST} is not a {FORMAT} v{VERSION} manifest")
        keys = ("layout_hash", "numel", "count", "chunk_size", "chunks", "gram")
        missing = [k for k in keys if k not in manifest]
        if missing:
            raise _fail(directory, f"{MANIFEST} lacks {missing}")
        return manifest

    @staticmethod
    def _read_gram(directory: Path, manifest: dict[str, Any]) -> torch.Tensor:
        count = int(manifest["count"])
        path = directory / manifest["gram"]["file"]
        try:
            data = path.read_bytes()
        except OSError:
            raise _fail(directory, f"{path.name} is missing") from None
        if len(data) != 8 * count * count or hashlib.sha256(data).hexdigest() != manifest["gram"]["sha256"]:
            raise _fail(directory, f"{path.name} is truncated or corrupt (checksum mismatch)")
        return torch.frombuffer(bytearray(data), dtype=torch.float64).reshape(count, count).clone()

    def _check_chunks(self) -> None:
        """Contiguous coverage, file sizes and headers agree with the manifest (cheap: no data read)."""
        expected = 0
        for entry in self._chunks:
            path = self.directory / entry["file"]
            if entry["start"] != expected:
                what = f"chunk {entry['file']} starts at row {entry['start']}, expected {expected}"
                raise _fail(self.directory, what)
            if not path.is_file():
                raise _fail(self.directory, f"chunk {entry['file']} is missing")
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise _fail(self.directory, f"chunk {entry['file']} is truncated ({size} of {entry['bytes']} bytes)")
            header, offset = read_header(path)
            same = (
                header.get("layout_hash") == self.layout_hash
                and header.get("numel") == self.numel
                and all(header.get(k) == entry[k] for k in ("start", "rows", "sha256"))
                and offset + 4 * entry["rows"] * self.numel == size
            )
            if not same:
                raise _fail(self.directory, f"chunk {entry['file']} does not match the manifest (stale or swapped)")
            entry["offset"] = offset
            expected += entry["rows"]
        if expected != self.count:
            raise _fail(self.directory, f"chunks hold {expected} snapshots, manifest says {self.count}")

    def verify(self) -> None:
        """Check every chunk's checksum now (one full read of the window)."""
        for index in range(len(self._chunks)):
            self._chunk(index)

    # ----------------------------------------------------------------------------------------------- reading
    def _chunk(self, index: int) -> torch.Tensor:
        entry = self._chunks[index]
        sha = None if index in self._verified else entry["sha256"]
        rows = read_rows(self.directory / entry["file"], entry["offset"], self.numel, 0, entry["rows"], sha)
        self._verified.add(index)
        return rows

    def chunks(self) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row index, float32 rows) for each chunk, in order: one chunk in memory at a time."""
        for index, entry in enumerate(self._chunks):
            yield entry["start"], self._chunk(index)

    blocks = chunks  # the row-block protocol streamed by koopsweep.koopman.gram.combine

    def row(self, i: int) -> torch.Tensor:
        """Snapshot ``i`` (negative counts from the end) as a float32 vector."""
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(f"snapshot {i} out of range for a window of {self.count}")
        for index, entry in enumerate(self._chunks):
            if entry["start"] <= i < entry["start"] + entry["rows"]:
                if index not in self._verified:
                    self._chunk(index)  # verify once before trusting a partial read
                return read_rows(self.directory / entry["file"], entry["offset"], self.numel, i - entry["start"], 1)[0]
        raise AssertionError("unreachable: chunks cover the window")

    def last(self) -> torch.Tensor:
        """The most recent snapshot."""
        return self.row(self.count - 1)

    def load(self) -> torch.Tensor:
        """All snapshots as one (count, numel) float32 tensor (tests and small windows only)."""
        return torch.cat([rows for _, rows in self.chunks()])

    @property
    def gram(self) -> torch.Tensor:
        """The raw float64 Gram ZZᵀ (derived from the stored increment Gram; see koopsweep.koopman.gram)."""
        return raw_gram(self.increment_gram)

    def chunk_files(self) -> list[tuple[Path, int, int]]:
        """(path, data byte offset, rows) per chunk, for readers outside torch (e.g. the numpy baseline)."""
        return [(self.directory / e["file"], e["offset"], e["rows"]) for e in self._chunks]

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"SnapshotWindow({self.directory}, {self.count} × {self.numel}, layout {self.layout_hash})"
