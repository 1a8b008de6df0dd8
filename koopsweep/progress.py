"""Progress bars that show on a terminal and stay out of logs.

A tqdm bar redrawn into a SLURM log, a CI log or a pipe turns into thousands of carriage-return lines, so bars are
on by default only when both stdout and stderr are terminals and the environment is not CI or a dumb terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["is_interactive", "progress"]

_FALSY = {"", "0", "false", "no", "off"}


def is_interactive(env: Mapping[str, str] | None = None, streams: Iterable[TextIO] | None = None) -> bool:
    """True on an interactive terminal: both streams are TTYs, `CI` is not set and `TERM` is not `dumb`."""
    env = os.environ if env is None else env
    if env.get("CI", "").strip().lower() not in _FALSY or env.get("TERM", "") == "dumb":
        return False
    streams = (sys.stdout, sys.stderr) if streams is None else streams
    for stream in streams:
        try:
            if stream is None or not stream.isatty():
                return False
        except (AttributeError, ValueError):  # replaced or closed streams
            return False
    return True


def progress(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    leave: bool = False,
) -> tqdm:
    """A tqdm bar on stderr; `enabled=None` decides with `is_interactive()`, True/False force it.

    A disabled bar is still a tqdm object: iterating, `update`, `set_postfix` and `close` work and print nothing.
    """
    show = is_interactive() if enabled is None else bool(enabled)
    return tqdm(
        iterable, total=total, desc=desc or None, disable=not show, leave=leave, dynamic_ncols=True, file=sys.stderr
    )
