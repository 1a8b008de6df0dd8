"""User-facing errors: one clear line saying what is wrong and how to fix it, never a traceback."""

from __future__ import annotations


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
