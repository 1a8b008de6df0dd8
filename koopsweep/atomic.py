"""Atomic file writes: a temporary file beside the target, fsync, rename — readers see all or nothing.

Every artifact koopsweep writes (results.json, trunk states, fit caches, snapshot chunks) goes through here, so a
crash or a SIGKILL never leaves half a file under a final name. Snapshot chunks skip the fsync (``durable=False``:
they are checksummed, and a window that lost one is recorded again); the curve and evaluation logs of a trunk are
appended line by line instead, and a line cut short by a crash is skipped when read. Files get the permissions the
umask gives any new file (``mkstemp`` alone makes them 0600, which breaks a store shared by a group). Whole folders
(a report) are built beside their target and swapped in with ``exchange_paths``.

A temporary file is named after its writer (``.<name>~<host>~<pid>~<random>.tmp``), so that a writer killed before
its rename can be told from one still writing: ``remove_stale_temps`` deletes only the former. A write the machine
refuses (no space, read-only, I/O error) is a ``MachineError``: one line naming the file. Every step calls
``koopsweep.failpoints.hit`` so the tests can fail it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from koopsweep import failpoints
from koopsweep.errors import machine_error

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
    with refused_as_one_line("cannot write", path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o666 & ~current_umask())
                for buffer in buffers:
                    failpoints.hit("write", path)
                    handle.write(buffer)
                handle.flush()
                if durable:
                    failpoints.hit("fsync", path)
                    os.fsync(handle.fileno())
            failpoints.hit("rename", path)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        failpoints.hit("renamed", path)


@contextlib.contextmanager
def refused_as_one_line(doing: str, path: Path) -> Iterator[None]:
    """Turn an OSError in the block into a MachineError whose one line names ``path`` (not a temporary file)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or str(exc.filename).endswith(TEMP_SUFFIX):
            exc.filename = str(path)
        raise machine_error(exc, doing) from None


def append_line(path: Path, line: str) -> None:
    """Append one line to a log (trunk curves, evaluations): a crash cuts at most this line, which readers skip."""
    with refused_as_one_line("cannot append to", path):
        failpoints.hit("append", path)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


HOST = socket.gethostname().replace("~", "-")
TEMP_SUFFIX = ".tmp"
STALE_FOREIGN_S = 24 * 3600.0
"""A temporary file of another host (a shared store) or of an older koopsweep is removed after a day: no write
takes that long."""


def temp_prefix(name: str) -> str:
    """``.<name>~<host>~<pid>~``: the temporary file says who writes it."""
    return f".{name}~{HOST}~{os.getpid()}~"


def process_alive(pid: int) -> bool:
    """True while a process of this host has ``pid`` (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temporary file whose writer is gone: a dead pid of this host, else older than a day."""
    name = path.name
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return False
    parts = name[: -len(TEMP_SUFFIX)].rsplit("~", 3)
    if len(parts) == 4 and parts[1] == HOST and parts[2].isdigit():
        return not process_alive(int(parts[2]))
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > STALE_FOREIGN_S


def remove_stale_temps(folder: Path) -> int:
    """Delete the temporary files below ``folder`` whose writers are gone (killed before their rename); the count."""
    removed = 0
    if not Path(folder).is_dir():
        return 0
    for path in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and is_stale_temp(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


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
