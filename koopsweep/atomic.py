"""Atomic file writes: a temporary file beside the target, fsync, rename — readers see all or nothing.

Every artifact koopsweep writes (results.json, trunk states, fit caches, snapshot chunks) goes through here, so a
crash or a SIGKILL never leaves half a file under a final name. Snapshot chunks skip the fsync (``durable=False``:
they are checksummed, and a window that lost one is recorded again); the curve and evaluation logs of a trunk are
appended line by line instead, and a line cut short by a crash is skipped when read. Files get the permissions the
umask gives any new file (``mkstemp`` alone makes them 0600, which breaks a store shared by a group). Whole folders
(a report) are built beside their target and swapped in with ``exchange_paths``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status), else set and reset."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, *buffers: bytes | memoryview, durable: bool = True) -> None:
    """Write ``buffers`` one after the other to ``path``, atomically; ``durable`` also survives a power loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
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


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): a reader sees one or the
    other, never neither. False where the platform or file system cannot (the caller falls back to two renames)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
