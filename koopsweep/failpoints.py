"""Named fault-injection points at every durable write, so the tests can prove that each fault is survived.

Why in the package: a crash between a file and its checksum, or a full disk at the third state of a trunk, cannot be
produced from outside on demand; the writers call ``hit(point, path)`` at each step instead, and a test decides what
happens there. Inert unless a test installs a hook (``install``) or the environment names faults
(``KOOPSWEEP_FAILPOINTS``, for a subprocess that must really die). Points:

``write``     before each chunk of bytes is written (``path``: the file it becomes)
``fsync``     before a finished file is flushed to the disk
``rename``    before a temporary file is renamed into place (a kill here leaves the temporary file)
``renamed``   right after the rename
``sidecar``   between a checked artifact and its checksum file
``append``    before a record is appended to a trunk's log (``evals.jsonl``, ``curves.jsonl``)
``swap``      before a report folder is swapped in

``KOOPSWEEP_FAILPOINTS="rename@*/states/*=kill#2,write@*results.json=enospc"``: at the 2nd ``rename`` of a file
matching ``*/states/*`` the process kills itself (SIGKILL); the 1st write of results.json fails with ENOSPC.
Actions: ``kill``, ``enospc``, ``eio``, ``erofs``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POINTS = ("write", "fsync", "rename", "renamed", "sidecar", "append", "swap")
ENV = "KOOPSWEEP_FAILPOINTS"
Hook = Callable[[str, Path], None]
_ERRNO = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}


@dataclass
class Fault:
    """One fault from ``KOOPSWEEP_FAILPOINTS``: at the ``nth`` hit of ``point`` on a path matching ``pattern``."""

    point: str
    pattern: str
    action: str
    nth: int = 1
    seen: int = 0

    def __call__(self, point: str, path: Path) -> None:
        if point != self.point or not fnmatch.fnmatch(str(path), self.pattern):
            return
        self.seen += 1
        if self.seen != self.nth:
            return
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(_ERRNO[self.action], os.strerror(_ERRNO[self.action]), str(path))


def parse(text: str) -> list[Fault]:
    """``point@pattern=action[#n]`` entries, comma-separated; ValueError for anything else."""
    faults = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        where, _, what = entry.partition("=")
        point, _, pattern = where.partition("@")
        action, _, nth = what.partition("#")
        if point not in POINTS or action not in ("kill", *_ERRNO) or not pattern:
            raise ValueError(f"{ENV}: {entry!r} is not point@pattern=action[#n] (points {', '.join(POINTS)})")
        faults.append(Fault(point, pattern, action, int(nth or 1)))
    return faults


_hooks: list[Hook] = list(parse(os.environ.get(ENV, "")))


def hit(point: str, path: Path) -> None:
    """Called by the writers at ``point``; runs the installed hooks (nothing at all in a normal run)."""
    for hook in _hooks:
        hook(point, Path(path))


def install(hook: Hook) -> Callable[[], None]:
    """Run ``hook(point, path)`` at every point from now on; returns the function that removes it again."""
    _hooks.append(hook)
    return lambda: _hooks.remove(hook) if hook in _hooks else None
