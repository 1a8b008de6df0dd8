"""Training time as a type: "3ep", "500it", "2ep10it" converted with the iterations per epoch."""

from __future__ import annotations

import re
from dataclasses import dataclass

from koopsweep.errors import ConfigError

_STEP_RE = re.compile(r"^\s*(?:(?P<ep>\d+)\s*ep)?\s*(?:(?P<it>\d+)\s*it)?\s*$")


@dataclass(frozen=True, order=False)
class Step:
    """A moment of training, as whole epochs plus extra iterations."""

    epochs: int = 0
    iterations: int = 0

    @classmethod
    def parse(cls, text: str | int | Step, what: str = "step") -> Step:
        """Parse "3ep", "500it" or "2ep10it"; a bare integer counts iterations."""
        if isinstance(text, Step):
            return text
        if isinstance(text, bool):
            raise ConfigError(f"{what}={text!r} is not a step; write e.g. '3ep', '500it' or '2ep10it'")
        if isinstance(text, int):
            if text < 0:
                raise ConfigError(f"{what}={text} is negative; steps count from 0")
            return cls(0, text)
        match = _STEP_RE.match(str(text))
        if not match or (match.group("ep") is None and match.group("it") is None):
            raise ConfigError(
                f"{what}={text!r} is not a step: use epochs and/or iterations such as '3ep', '500it' or '2ep10it'"
            )
        return cls(int(match.group("ep") or 0), int(match.group("it") or 0))

    def to_iterations(self, iterations_per_epoch: int) -> int:
        """Absolute iteration count for a given epoch length."""
        if iterations_per_epoch <= 0:
            raise ValueError("iterations_per_epoch must be positive")
        return self.epochs * iterations_per_epoch + self.iterations

    def __str__(self) -> str:
        if self.epochs and self.iterations:
            return f"{self.epochs}ep{self.iterations}it"
        if self.epochs:
            return f"{self.epochs}ep"
        return f"{self.iterations}it"


def definitely_after(a: Step, b: Step) -> bool:
    """True when ``a`` comes after ``b`` whatever the epoch length (used before the data are loaded)."""
    return (a.epochs > b.epochs and a.iterations >= b.iterations) or (
        a.epochs >= b.epochs and a.iterations > b.iterations
    )
