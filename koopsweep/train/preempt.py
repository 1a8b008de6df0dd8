"""SIGTERM/SIGINT become a clean stop at the next step boundary, so the run can save its state and resume."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Preempted(Exception):
    """Raised by the trainer at a step boundary after a stop signal."""

    def __init__(self, iteration: int, signum: int):
        super().__init__(f"{signal.Signals(signum).name} at iteration {iteration}")
        self.iteration = iteration
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopFlag:
    """Remembers the first stop signal received; ``__call__`` returns it (or None)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> int | None:
        return self.signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[StopFlag]:
    """Install SIGTERM/SIGINT handlers for the duration of a run (main thread only), then restore the old ones."""
    flag = StopFlag()
    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, flag._handle)
    except ValueError:  # not the main thread (e.g. some launchers): signals stay as they were
        pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
