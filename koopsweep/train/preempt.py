"""SIGTERM/SIGINT become a clean stop at the next step boundary, so the run can save its state and resume.

Handlers can only be installed by the main thread. A run in another thread (W&B's in-process agent runs each cell
in a thread of its own) uses the flag of the innermost ``catch_stop_signals`` the main thread holds: the warm
agent holds one for its whole life, so a SIGTERM reaches the cell that is training. Blocks nest (a warm loop around
each cell's run): a signal the inner block caught is handed to the enclosing one when it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
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


_installed: list[StopFlag] = []  # the flags whose handlers the main thread holds now, innermost last


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[StopFlag]:
    """Install SIGTERM/SIGINT handlers for the block, then restore the old ones; outside the main thread, the
    flag of the main thread's innermost handlers (or one no signal sets, when it holds none)."""
    if threading.current_thread() is not threading.main_thread():
        yield _installed[-1] if _installed else StopFlag()
        return
    flag = StopFlag()
    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, flag._handle)
    except ValueError:  # an interpreter that is not the main one: signals stay as they were
        pass
    _installed.append(flag)
    try:
        yield flag
    finally:
        _installed.remove(flag)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pass_on(flag)


def _pass_on(flag: StopFlag) -> None:
    """A signal an inner block caught is the enclosing block's too: one that arrived after the run's last step
    check (while it evaluated or wrote its results) must still stop the warm loop around it before its next cell."""
    if flag.signum is not None and _installed and _installed[-1].signum is None:
        _installed[-1].signum = flag.signum
