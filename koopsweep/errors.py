"""User-facing errors: one clear line saying what is wrong and how to fix it, never a traceback."""

from __future__ import annotations

import errno
import os


class KoopsweepError(Exception):
    """An error caused by the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2


class ConfigError(KoopsweepError):
    """A configuration value is missing, misspelled, of the wrong type or impossible."""


class DataError(KoopsweepError):
    """A dataset cannot be found or read."""


class ArtifactError(KoopsweepError):
    """A stored artifact (snapshots, checkpoint) does not verify: wrong layout, truncated or corrupt."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (libraries put the gist there), else its type."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


DIVERGED_EXIT_CODE = 3
"""Exit status of a single run whose training loss became NaN or infinite: a result (results.json says diverged),
not a crash (1) nor a refused input (2). Jobs of a multirun and runs under a W&B agent exit 0 instead, so the sweep
goes on and counts the cell (koopsweep.cli)."""


class MachineError(KoopsweepError, OSError):
    """The machine refused a read or a write (no space, read-only, I/O error, a folder where a file belongs).

    Still an OSError, so code that handles a failed write keeps doing so; its message is the one line to print.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "the machine refused a file operation"


_FIXES = {
    errno.ENOSPC: "free space there, or point the setting that names the folder (paths.store_dir, paths.log_dir, "
    "--out) at a roomier disk, and run the same command again",
    errno.EDQUOT: "the disk quota is exhausted: free space, or use another folder, and run the same command again",
    errno.EROFS: "the file system is read-only: use a writable folder",
    errno.EACCES: "make it writable for this user (chmod/chown), or use another folder",
    errno.EPERM: "make it writable for this user (chmod/chown), or use another folder",
    errno.EIO: "the disk reported an I/O error: check it (dmesg), then run the same command again",
    errno.EISDIR: "a folder stands where koopsweep keeps a file: remove that folder",
    errno.ENOTDIR: "a file stands where koopsweep keeps a folder: remove that file",
    errno.ENOENT: "it vanished while in use (deleted, or its disk unmounted): make it available again",
}


def _path_in_traceback(exc: BaseException) -> str | None:
    """The ``path`` koopsweep's innermost frame was writing when a library raised without naming the file (PIL
    saving a figure, a csv writer)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if f"{os.sep}koopsweep{os.sep}" in frame.f_code.co_filename:
            path = frame.f_locals.get("path")
            if isinstance(path, (str, os.PathLike)):
                return os.fspath(path)
    for frame in reversed(frames):  # Hydra writing the job's .hydra/ files
        folder, name = frame.f_locals.get("output_dir"), frame.f_locals.get("filename")
        if isinstance(folder, (str, os.PathLike)) and isinstance(name, str):
            return os.path.join(folder, name)
    return None


def machine_error(exc: OSError, doing: str = "") -> MachineError:
    """One line for an OSError: what was being done, on which path, why, and what to do about it."""
    if isinstance(exc, MachineError):
        return exc
    path = exc.filename or _path_in_traceback(exc) or ""
    reason = exc.strerror or first_line(exc)
    fix = _FIXES.get(exc.errno or 0, "fix it and run the same command again")
    if not doing and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        doing = "cannot write"
    subject = f"{doing} {path}".strip() if doing else (f"{path}" if path else "a file operation")
    error = MachineError(f"{subject}: {reason}: {fix}")
    error.errno, error.filename = exc.errno, exc.filename
    return error
