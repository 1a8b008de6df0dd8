"""Experiment tracking: everything W&B goes through `Tracker` (wandb is imported nowhere else)."""

from koopsweep.tracking.wandb_run import (
    EXIT_CODES,
    MODES,
    RESOLVED_CONFIG_KEY,
    STATUSES,
    Tracker,
    api_key_source,
    flatten_config,
    resolve_mode,
)

__all__ = [
    "EXIT_CODES",
    "MODES",
    "RESOLVED_CONFIG_KEY",
    "STATUSES",
    "Tracker",
    "api_key_source",
    "flatten_config",
    "resolve_mode",
]
