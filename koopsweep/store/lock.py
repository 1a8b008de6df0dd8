"""Lock files that say who holds them, and whose waiters can still be stopped: exclusive or shared.

Why not a plain blocking ``flock``: a run waiting for another run's trunk would print nothing for hours and ignore
SIGTERM until the lock came free (a SLURM preemption then ends in SIGKILL). Here the holder writes its pid, host and
start time into the lock file, a waiter says once whom it waits for, and it polls with ``LOCK_NB`` so that its
``while_waiting`` callback (which raises on a stop signal) runs every ``poll_s``. A lock file deleted while held
(``store gc``) is detected after acquiring it, and the lock is taken again on the file now at that path.

``shared=True`` takes a shared ``flock`` instead: any number of shared holders at once, none while an exclusive
one holds the file. Shared holders do not write their name into the file (there may be many); an exclusive waiter
names "another process". A lock is released by the kernel when its process dies, so a crashed holder never leaves
a stale lock behind, whichever the kind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

POLL_S = 0.2


def _open(path: Path) -> tuple[IO[str], bool]:
    """The lock file, writable when permissions allow (another user's file in a shared store may be read-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return open(path, "a+"), True
    except PermissionError:
        return open(path), False


def _try_lock(handle: IO[str], shared: bool = False) -> bool:
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _still_at(handle: IO[str], path: Path) -> bool:
    """True when ``handle`` is still the file at ``path`` (not deleted or replaced while we waited)."""
    try:
        here, there = os.fstat(handle.fileno()), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def holder(path: Path) -> dict[str, Any] | None:
    """Who wrote the lock file last (pid, host, since), or None when it names nobody."""
    try:
        info = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"


def _write_holder(handle: IO[str]) -> None:
    since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}))
    handle.flush()


@contextlib.contextmanager
def hold(
    path: Path,
    what: str,
    while_waiting: Callable[[], None] = lambda: None,
    poll_s: float = POLL_S,
    shared: bool = False,
) -> Iterator[None]:
    """Hold the lock at ``path`` for the body; while another process holds it, say so once and keep polling.

    ``while_waiting`` runs between polls: raise from it (e.g. on SIGTERM) to give up waiting. ``shared`` holders
    exclude exclusive ones only.
    """
    path = Path(path)
    announced: str | None = None
    while True:
        handle, writable = _open(path)
        writable = writable and not shared  # shared holders leave the holder's record alone
        try:
            while not _try_lock(handle, shared):
                who = describe(holder(path))
                if who != announced:
                    print(f"koopsweep: waiting for {what}: locked by {who}", file=sys.stderr, flush=True)
                    announced = who
                while_waiting()
                time.sleep(poll_s)
            if not _still_at(handle, path):
                continue  # deleted while we waited: lock the file that is there now
            if writable:
                _write_holder(handle)
            try:
                yield
            finally:
                if writable:
                    handle.seek(0)
                    handle.truncate()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return
        finally:
            handle.close()


@contextlib.contextmanager
def try_hold(path: Path) -> Iterator[dict[str, Any] | None]:
    """Take the lock exclusively without waiting: yields None when taken, else whom it is held by (``{}`` when
    unknown, e.g. by shared holders)."""
    path = Path(path)
    if not path.exists():
        yield None
        return
    handle, writable = _open(path)
    try:
        if not _try_lock(handle):
            yield holder(path) or {}
            return
        try:
            if writable:
                _write_holder(handle)
            yield None
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
