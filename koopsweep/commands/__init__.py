"""Subcommands of ``koopsweep`` beside the Hydra run itself (``koopsweep <name> ...``), imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence


def _lazy(module: str) -> Callable[[Sequence[str]], None]:
    def run(argv: Sequence[str]) -> None:
        importlib.import_module(f"koopsweep.commands.{module}").main(argv)

    return run


COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {
    "store": _lazy("store"),
    "sweep": _lazy("sweep"),
    "report": _lazy("report"),
    "agent": _lazy("agent"),
    "dashboard": _lazy("dashboard"),
    "export": _lazy("export"),
}
