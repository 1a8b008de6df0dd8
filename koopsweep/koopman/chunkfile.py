"""One chunk of snapshots on disk: a small self-describing header followed by raw little-endian float32 rows.

Layout: 8-byte magic, 4-byte little-endian header length, JSON header (layout hash, start, rows, numel, dtype,
sha256 of the data), padding to a 64-byte boundary, then rows × numel float32. The header makes a stray chunk
identifiable on its own; the manifest repeats the same fields so a swapped or stale chunk is caught. Files are
written atomically (temporary file, rename), so a crashed process leaves either the whole chunk or none. Chunks are
not fsynced (that was a quarter of the recording cost): after a power loss a chunk whose data did not reach the
disk fails its checksum, and the window is recorded again.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch

from koopsweep.atomic import atomic_write
from koopsweep.errors import ArtifactError

MAGIC = b"KSNAPCH1"
ALIGN = 64
DTYPE = "<f4"


def _data_view(rows: torch.Tensor) -> memoryview:
    return memoryview(rows.contiguous().numpy()).cast("B")


def write_chunk(path: Path, rows: torch.Tensor, layout_hash: str, start: int) -> dict[str, Any]:
    """Write a (rows, numel) float32 CPU tensor as a chunk file; returns the manifest entry."""
    if rows.dtype != torch.float32 or rows.device.type != "cpu" or rows.ndim != 2:
        raise ValueError("chunks hold a 2-D float32 CPU tensor")
    data = _data_view(rows)
    header = {
        "layout_hash": layout_hash,
        "start": int(start),
        "rows": int(rows.shape[0]),
        "numel": int(rows.shape[1]),
        "dtype": DTYPE,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    text = json.dumps(header, sort_keys=True).encode()
    offset = -(-(len(MAGIC) + 4 + len(text)) // ALIGN) * ALIGN
    text = text + b" " * (offset - len(MAGIC) - 4 - len(text))
    atomic_write(path, MAGIC, struct.pack("<I", len(text)), text, data, durable=False)
    return {"file": path.name, **{k: header[k] for k in ("start", "rows", "sha256")}, "bytes": offset + len(data)}


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a chunk file and the byte offset of its data."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                raise ArtifactError(f"{path} is not a koopsweep snapshot chunk (bad magic); record the window again")
            (length,) = struct.unpack("<I", head[len(MAGIC) :])
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise ArtifactError(f"snapshot chunk {path} cannot be read ({exc.strerror}); record the window again") from None
    except ValueError:
        raise ArtifactError(f"snapshot chunk {path} has a corrupt header; record the window again") from None
    return header, len(MAGIC) + 4 + length


def read_rows(path: Path, offset: int, numel: int, first: int, count: int, sha256: str | None = None) -> torch.Tensor:
    """Rows [first, first+count) of a chunk as float32; with ``sha256`` (whole chunk only) verify the data."""
    out = torch.empty(count, numel, dtype=torch.float32)
    view = _data_view(out)
    try:
        with open(path, "rb") as handle:
            handle.seek(offset + first * numel * 4)
            got = handle.readinto(view)
    except OSError as exc:
        raise ArtifactError(f"snapshot chunk {path} cannot be read ({exc.strerror}); record the window again") from None
    if got != len(view):
        raise ArtifactError(f"snapshot chunk {path} is truncated ({got} of {len(view)} bytes); record the window again")
    if sha256 is not None and hashlib.sha256(view).hexdigest() != sha256:
        raise ArtifactError(f"snapshot chunk {path} is corrupt (checksum mismatch); record the window again")
    return out
