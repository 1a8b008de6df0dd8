"""Hydra launcher plugins that `koopsweep sweep local --jobs N` and `koopsweep sweep slurm` need, checked up front.

Without the plugin Hydra fails deep inside composition with a message about a missing config group; here the user
gets one line with the pip command that installs it, before anything is composed or launched.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from koopsweep.errors import ConfigError


@dataclass(frozen=True)
class Plugin:
    """A Hydra launcher plugin: the module Hydra discovers, and how to install it."""

    module: str
    what: str
    install: str


JOBLIB = Plugin("hydra_plugins.hydra_joblib_launcher", "Hydra's joblib launcher", "pip install hydra-joblib-launcher")
SUBMITIT = Plugin(
    "hydra_plugins.hydra_submitit_launcher", "Hydra's submitit launcher", 'pip install "koopsweep[slurm]"'
)


def installed(plugin: Plugin) -> bool:
    """Whether the plugin is importable (a module blocked or missing in sys.path counts as not installed)."""
    try:
        return importlib.util.find_spec(plugin.module) is not None
    except (ImportError, ValueError):
        return False


def require(plugin: Plugin, needed_by: str) -> None:
    """Raise ConfigError naming the pip command unless the plugin is installed."""
    if not installed(plugin):
        raise ConfigError(f"{needed_by} needs {plugin.what}, which is not installed: {plugin.install}")
