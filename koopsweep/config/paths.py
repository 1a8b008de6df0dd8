"""The folders a run writes to or reads from, checked before anything is loaded or trained.

A file where the store should be, or a store that cannot be written (another user's, a read-only mount), would
otherwise surface as a traceback from deep inside the trunk store after the data were loaded. Nothing is created
here: writability is probed with an anonymous temporary file in the nearest existing folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from koopsweep.errors import ConfigError
from koopsweep.store.store import Store


def _resolved(cfg: DictConfig, key: str) -> Path:
    try:
        return Path(str(cfg.paths[key])).expanduser()
    except OmegaConfBaseException as exc:
        raise ConfigError(f"paths.{key} cannot be resolved: {str(exc).splitlines()[0]}") from None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _no_file_in_the_way(key: str, path: Path) -> Path:
    """The nearest existing folder on the way to ``path``; ConfigError when a file stands there instead."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise ConfigError(f"paths.{key}={path} is not a folder{where}: give a folder (or remove the file)")
    return existing


def _writable(key: str, path: Path, folder: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"paths.{key}={path} cannot be written ({exc.strerror or type(exc).__name__} in {folder}): choose a "
            "folder you can write to, or ask its owner for group write access"
        ) from None


def check_paths(cfg: DictConfig) -> None:
    """Raise ConfigError when the store cannot be created or written, or when a file stands where a folder must."""
    store = _resolved(cfg, "store_dir")
    _writable("store_dir", store, _no_file_in_the_way("store_dir", store))
    for name in Store.subfolders():
        sub = store / name
        if sub.exists():
            _writable("store_dir", store, _no_file_in_the_way("store_dir", sub))
    data = _resolved(cfg, "data_dir")
    _no_file_in_the_way("data_dir", data)
