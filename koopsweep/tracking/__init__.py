"""Experiment tracking with Weights & Biases: the mode a run gets, who it is, and the `Tracker` that logs it.

`tracker.py` is the only place koopsweep's runs call wandb from (`koopsweep.sweeps.launch` and
`sweep_workspace.py`, a sweep's saved W&B workspace, use wandb's API directly for sweeps and workspaces).
"""

from koopsweep.tracking.identity import RunIdentity, flatten_config, run_identity
from koopsweep.tracking.mode import MODES, api_key_source, resolve_mode
from koopsweep.tracking.tracker import EXIT_CODES, RESOLVED_CONFIG_KEY, STATUSES, STEP, Tracker

__all__ = [
    "EXIT_CODES",
    "MODES",
    "RESOLVED_CONFIG_KEY",
    "STATUSES",
    "STEP",
    "RunIdentity",
    "Tracker",
    "api_key_source",
    "flatten_config",
    "resolve_mode",
    "run_identity",
]
