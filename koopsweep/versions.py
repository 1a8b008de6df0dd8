"""``koopsweep --version``: koopsweep's version and where it is imported from, and the versions it runs with.

Hydra would answer ``--version`` with its own version only; a bug report needs torch's (and its CUDA build), Hydra's
and wandb's too. Dependency versions come from package metadata, so this answers in milliseconds without importing
torch.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import koopsweep

DEPENDENCIES = ("torch", "hydra-core", "omegaconf", "wandb")


def installed_version(distribution: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    """Two lines: koopsweep's version and location, then its main dependencies' and Python's versions."""
    where = Path(koopsweep.__file__).resolve().parent
    deps = ", ".join(f"{name} {installed_version(name)}" for name in DEPENDENCIES)
    return f"koopsweep {koopsweep.__version__} ({where})\n{deps}, Python {platform.python_version()}"
