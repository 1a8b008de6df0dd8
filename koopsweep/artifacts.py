"""Checked artifacts: written atomically with a sha256 sidecar, verified on every read, loaded as data only.

A file that does not verify (truncated by a crash, flipped bits, edited by hand) raises ArtifactError; callers
rebuild it with a warning and never use it. The sidecar is an integrity check, not authentication: stores are
shared between users and machines, so a file with a recomputed sidecar can still be planted. Every artifact is
therefore loaded with ``torch.load(weights_only=True)`` (tensors and plain containers, never code), and what
koopsweep writes is checked to be loadable that way before it is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from koopsweep import failpoints
from koopsweep.atomic import atomic_write
from koopsweep.errors import ArtifactError

# What torch.load(weights_only=True) rebuilds besides tensors and containers (dict, list, tuple).
_PLAIN = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Size)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def check_plain(obj: Any, where: str = "artifact") -> None:
    """Raise TypeError for anything a weights-only load would refuse (numpy arrays and scalars, objects)."""
    if torch.is_tensor(obj) or isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise TypeError(f"{where}: key {key!r} of type {type(key).__name__} cannot be stored")
            check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            check_plain(value, f"{where}[{index}]")
    else:
        raise TypeError(
            f"{where} is a {type(obj).__module__}.{type(obj).__name__}: store tensors and plain data only "
            "(artifacts are loaded with torch.load(weights_only=True))"
        )


def save_checked(path: Path, obj: Any, meta: dict[str, Any] | None = None) -> None:
    """torch.save ``obj`` (tensors and plain data) to ``path`` with a sidecar holding its sha256, size and ``meta``."""
    check_plain(obj, str(path))
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **(meta or {})}
    atomic_write(path, data)
    try:
        failpoints.hit("sidecar", path)  # a crash here leaves a file its old (or no) sidecar does not verify: rebuilt
        atomic_write(_sidecar(path), json.dumps(record, sort_keys=True).encode())
    except BaseException:
        with contextlib.suppress(OSError):  # no file without its checksum is left behind by a failed write
            path.unlink()
        raise


def read_meta(path: Path) -> dict[str, Any]:
    """The sidecar of a checked artifact (raises ArtifactError when missing or unreadable)."""
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} has no readable checksum file ({exc.__class__.__name__})") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path} has a malformed checksum file")
    return meta


def load_checked(path: Path, expect: dict[str, Any] | None = None, map_location: str | torch.device = "cpu") -> Any:
    """Load a checked artifact after verifying its checksum and any ``expect``-ed sidecar fields.

    Only tensors and plain data are rebuilt (weights_only=True); anything else raises ArtifactError, unexecuted.
    """
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
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ArtifactError(
            f"{path} holds more than tensors and plain data, so it was not loaded (written by an older koopsweep, "
            f"or planted: {type(exc).__name__})"
        ) from None


def remove_checked(path: Path) -> None:
    """Delete an artifact and its sidecar."""
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)
