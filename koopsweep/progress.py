"""Progress bars that show on a terminal, and a line every minute in logs.

A tqdm bar redrawn into a SLURM log, a CI log or a pipe turns into thousands of carriage-return lines, so bars are
on by default only when both stdout and stderr are terminals and the environment is not CI or a dumb terminal.
Elsewhere long work still says how far it is: a log line (logger ``koopsweep.progress``) once a minute, none for
work shorter than that, so a 40-epoch trunk in a SLURM log or a background grid's run log can be watched.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["LoggedProgress", "is_interactive", "progress"]

_FALSY = {"", "0", "false", "no", "off"}
LOG_EVERY_S = 60.0
log = logging.getLogger(__name__)


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


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LoggedProgress:
    """A bar's stand-in where no bar is drawn: the same `update`/`set_postfix`/`close`/iteration, and a log line
    (`desc: n/total it (p %), rate, time left, postfix`) every ``every_s`` seconds of work, then one at the end.
    ``initial``: work done before this process (a resumed run), counted in n but not in the rate."""

    disable = True  # no bar is drawn

    def __init__(
        self,
        iterable: Iterable[Any] | None,
        total: int | None,
        desc: str,
        every_s: float = LOG_EVERY_S,
        initial: int = 0,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.every_s = iterable, total, desc or "progress", every_s
        self.n, self.initial, self.postfix, self.lines = initial, initial, "", 0
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()

    def __enter__(self) -> LoggedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._log(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """One last line, only if the work was long enough to have logged before."""
        if self.lines:
            self._log(time.monotonic())
            self.lines = 0

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = (self.n - self.initial) / elapsed
        parts = [
            f"{self.n:,}/{self.total:,} it ({100 * self.n / self.total:.0f} %)" if self.total else f"{self.n:,} it"
        ]
        parts.append(f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.2f} s/it" if rate > 0 else "0 it/s")
        if self.total and rate > 0:
            parts.append(f"{_duration((self.total - self.n) / rate)} left" if self.n < self.total else "done")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: " + ", ".join(parts)

    def _log(self, now: float) -> None:
        self.lines += 1
        log.info(self.line(now))


def progress(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    leave: bool = False,
    initial: int = 0,
) -> tqdm | LoggedProgress:
    """A tqdm bar on stderr; `enabled=None` decides with `is_interactive()`, True/False force it. ``initial``: work
    done before (a resumed run starts its bar there, its rate and time left from this process's work).

    Where `enabled=None` finds no terminal, a LoggedProgress logs a line a minute instead; `enabled=False` is
    silent. Either way iterating, `update`, `set_postfix` and `close` work the same.
    """
    if enabled is None and not is_interactive():
        return LoggedProgress(iterable, total, desc, initial=initial)
    show = enabled is None or bool(enabled)  # None here: an interactive terminal
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=desc or None,
        disable=not show,
        leave=leave,
        dynamic_ncols=True,
        file=sys.stderr,
    )
