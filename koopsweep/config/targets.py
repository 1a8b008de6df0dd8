"""Importing what a config's ``_target_`` names, so that a typo fails at once with the key to fix."""

from __future__ import annotations

import importlib
from typing import Any

from koopsweep.errors import ConfigError


def import_target(key: str, target: str | None, what: str) -> Any:
    """The object ``target`` names; ConfigError (one line naming ``key``) when it is empty or cannot be imported."""
    if not target:
        raise ConfigError(f"{key} is empty: set it to the import path of a {what}")
    module_name, _, attr = str(target).rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
        obj = getattr(module, attr) if module is not None else None
    except (ImportError, AttributeError, ValueError):
        obj = None
    if obj is None:
        raise ConfigError(f"{key}={target!r} cannot be imported: give the full import path of a {what}")
    return obj
