"""Subcommands of ``koopsweep`` beside the Hydra run itself (``koopsweep <name> ...``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {}
