"""Checked artifacts: written atomically with a sha256 sidecar, verified on every read.

A file that does not verify (truncated by a crash, flipped bits, edited by hand) raises ArtifactError; callers
rebuild it with a warning and never use it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from koopsweep.atomic import atomic_write
from koopsweep.errors import ArtifactError


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checked(path: Path, obj: Any, meta: dict[str, Any] | None = None) -> None:
    """torch.save ``obj`` to ``path`` with a sidecar holding its sha256, size and ``meta``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **(meta or {})}
    atomic_write(path, data)
    atomic_write(_sidecar(path), json.dumps(record, sort_keys=True).encode())


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar of a checked artifact (raises ArtifactError when missing or unreadable)."""
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} has no readable checksum file ({exc.__class__.__name__})") from None


def load_checked(path: Path, expect: dict[str, Any] | None = None, map_location: str | torch.device = "cpu") -> Any:
    """Load a checked artifact after verifying its checksum and any ``expect``-ed sidecar fields."""
    meta = read_meta(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read: {exc.strerror}") from None
    if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ArtifactError(f"{path} is corrupt or truncated (checksum mismatch)")
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise ArtifactError(f"{path} was written with {key}={meta.get(key)!r}, expected {value!r}")
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)


def remove_checked(path: Path) -> None:
    """Delete an artifact and its sidecar."""
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)
