"""Atomic file writes: a temporary file beside the target, fsync, rename — readers see all or nothing.

Every artifact koopsweep writes (results.json, trunk states, snapshot chunks) goes through here, so a crash or a
SIGKILL never leaves half a file under a final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, *buffers: bytes | memoryview, durable: bool = True) -> None:
    """Write ``buffers`` one after the other to ``path``, atomically; ``durable`` also survives a power loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            for buffer in buffers:
                handle.write(buffer)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """JSON (indented, non-JSON values as str) written atomically."""
    atomic_write(path, json.dumps(payload, indent=2, default=str).encode())
