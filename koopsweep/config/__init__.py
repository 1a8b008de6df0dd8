"""Configuration: typed schemas, resolvers, composition and semantic checks."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from koopsweep.config.schema import Config, register_configs
from koopsweep.errors import ConfigError


def plain(value: Any) -> Any:
    """A config node as plain Python (dicts and lists, interpolations resolved); other values unchanged."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


CONF_DIR_ENV = "KOOPSWEEP_CONF_DIR"


def conf_dir() -> Path:
    """The conf/ folder: ``$KOOPSWEEP_CONF_DIR`` when set (a sweep's own copy: `koopsweep sweep local` runs its cells
    from one, so editing conf/ while a grid runs changes no later cell), else the one inside the installed package
    (wheel) or beside it (source checkout, editable install)."""
    pinned = os.environ.get(CONF_DIR_ENV)
    if pinned:
        if not (Path(pinned) / "config.yaml").is_file():
            raise ConfigError(f"{CONF_DIR_ENV}={pinned}: no config.yaml there; unset it to use koopsweep's conf/")
        return Path(pinned).resolve()
    return package_conf_dir()


def package_conf_dir() -> Path:
    """The installed conf/, never ``$KOOPSWEEP_CONF_DIR``: what decides which ``_target_`` a sweep may set, so that
    a folder named in the environment cannot widen what is allowed."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"koopsweep's conf/ folder is missing (looked in {here} and {here.parent})")


def _original_cwd() -> str:
    """Where the user started koopsweep, even if a Hydra job changed directory since."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return HydraConfig.get().runtime.cwd
    except Exception:
        pass
    return os.getcwd()


def _unless(other: object, value: object) -> object:
    """``${ks.unless:${.compression},0.8}``: ``value`` unless ``other`` is set (then null)."""
    return value if other is None else None


def _div(numerator: object, denominator: object) -> int:
    """``${ks.div:320,${model.kwargs.hidden}}``: integer division, for a setting that scales with another (the
    width study's delays, 32·10/h)."""
    return int(numerator) // int(denominator)  # type: ignore[call-overload]


def unique_suffix() -> str:
    """6 random hex digits: two runs started in the same second (two agents, two users) get their own folders."""
    return secrets.token_hex(3)


def register_resolvers() -> None:
    """``${ks.cwd:}`` (the launch directory), ``${ks.unless:a,b}``, ``${ks.div:a,b}`` and ``${ks.uid:}``; registered
    once per process.

    ``ks.uid`` is cached in the config like Hydra's ``now``, so every job of a multirun (and its joblib or submitit
    workers, which receive the cache with the config) sees the same value.
    """
    if not OmegaConf.has_resolver("ks.cwd"):
        OmegaConf.register_new_resolver("ks.cwd", _original_cwd)
    if not OmegaConf.has_resolver("ks.unless"):
        OmegaConf.register_new_resolver("ks.unless", _unless)
    if not OmegaConf.has_resolver("ks.div"):
        OmegaConf.register_new_resolver("ks.div", _div)
    if not OmegaConf.has_resolver("ks.uid"):
        OmegaConf.register_new_resolver("ks.uid", unique_suffix, use_cache=True)


def setup() -> None:
    """Everything Hydra needs before composing a koopsweep config."""
    register_configs()
    register_resolvers()


__all__ = ["CONF_DIR_ENV", "Config", "conf_dir", "package_conf_dir", "plain", "register_resolvers", "setup"]
