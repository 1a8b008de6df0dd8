"""What a config's ``_target_`` names: imported with one-line errors, and allowed, not trusted, when a sweep set it.

A ``_target_`` is imported and called (the model is even built during the preflight), so whoever sets one runs code.
On the command line that is the user; overrides that come from a W&B sweep are set by whoever can create sweeps in
the project, and ``koopsweep agent`` runs them unattended. So before anything of such a command line is composed or
imported, every ``_target_`` it sets must be one koopsweep's own configs name (the models, data loaders and scorers
of conf/, and torch.optim's optimizers) or one the machine's own local config names (any ``_target_`` in
``conf/local/*.yaml``, and the import paths listed in ``conf/local/allowed_targets.txt``). A sweep also may not set
Hydra's own settings (callbacks, launchers and search paths import code too) nor interpolate (``${oc.env:...}``
would read this machine's environment into a run config uploaded to the sweep's project).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from koopsweep.errors import ConfigError

ALLOWED_FILE = "allowed_targets.txt"
_OPTIMIZER = re.compile(r"^torch\.optim\.[A-Z][A-Za-z0-9]*$")
_FLAGS = ("-cd", "-cp", "-cn", "--config-dir", "--config-path", "--config-name", "--experimental-rerun")


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


def sweep_origin(env: Mapping[str, str] | None = None) -> str | None:
    """The W&B sweep this process runs a point of (``WANDB_SWEEP_ID``, set by wandb's agents), or None."""
    return (os.environ if env is None else env).get("WANDB_SWEEP_ID") or None


def _targets_in(node: Any) -> Iterator[str]:
    """Every ``_target_`` value in a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets_in(value)


def _yaml_targets(files: Sequence[Path]) -> set[str]:
    import yaml

    found: set[str] = set()
    for path in files:
        try:
            found.update(_targets_in(yaml.safe_load(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, yaml.YAMLError):
            continue  # a broken file is reported by the composition, which refuses it
    return found


@functools.lru_cache(maxsize=1)
def own_targets() -> frozenset[str]:
    """Every ``_target_`` koopsweep's packaged configs name (conf/, the machine's local/ left out)."""
    from koopsweep.config import package_conf_dir

    root = package_conf_dir()
    return frozenset(_yaml_targets([p for p in root.rglob("*.yaml") if p.relative_to(root).parts[0] != "local"]))


def local_dir() -> Path:
    """The machine's own, git-ignored config folder (conf/local/), where it is installed (not a sweep's copy)."""
    from koopsweep.config import package_conf_dir

    return package_conf_dir() / "local"


def local_targets() -> frozenset[str]:
    """What the machine's own config allows: targets in conf/local/*.yaml and the lines of allowed_targets.txt."""
    local = local_dir()
    found = _yaml_targets(sorted(local.glob("*.yaml"))) if local.is_dir() else set()
    listed = local / ALLOWED_FILE
    if listed.is_file():
        for line in listed.read_text(encoding="utf-8").splitlines():
            entry = line.split("#", 1)[0].strip()
            if entry:
                found.add(entry)
    return frozenset(found)


def allowed_target(target: str) -> bool:
    """True when a sweep may name ``target``: koopsweep's own, torch.optim's, or allowed by the local config."""
    return target in own_targets() or bool(_OPTIMIZER.match(target)) or target in local_targets()


def _refuse(override: str, why: str) -> ConfigError:
    return ConfigError(f"the sweep's {override!r} is refused: {why}")


def _check_value(override: str, key: str, value: Any) -> None:
    if isinstance(value, str) and "${" in value:
        raise _refuse(override, "a sweep may not interpolate (it could read this machine's environment)")
    if key.rsplit(".", 1)[-1] == "_target_" and not (isinstance(value, str) and allowed_target(value)):
        raise _refuse(override, _not_allowed(value))
    if isinstance(value, dict):
        for name, inner in value.items():
            _check_value(override, f"{key}.{name}", inner)
    elif isinstance(value, list):
        for inner in value:
            _check_value(override, key, inner)


def _not_allowed(target: Any) -> str:
    return (
        f"{target!r} is none of koopsweep's models, data loaders, scorers or torch.optim's optimizers; to let "
        f"sweeps name it, list it in conf/local/{ALLOWED_FILE} on this machine"
    )


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    """Hydra's override parser, built once (building its grammar takes a quarter of a second)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def check_sweep_targets(argv: Sequence[str]) -> None:
    """Refuse, in one line, a command line from a W&B sweep that sets a ``_target_`` koopsweep does not allow, any
    Hydra setting, a config folder flag or an interpolation; nothing is composed or imported before this.

    Called by ``koopsweep`` when it runs under a W&B agent (koopsweep.cli) and by the warm agent for every point
    (koopsweep.sweeps.warm_agent).
    """
    from hydra.errors import OverrideParseException

    parser = _parser()
    for arg in argv:
        if arg.split("=", 1)[0] in _FLAGS or arg in ("-m", "--multirun"):
            raise _refuse(arg, "a sweep may not choose config folders, files or modes: run the configs it names")
        if arg.startswith("-"):
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except (OverrideParseException, ValueError):
            continue  # refused in one line by the composition, which parses it the same way
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise _refuse(arg, "Hydra's own settings (callbacks, launchers, search paths) are this machine's")
        if override.is_sweep_override():
            raise _refuse(arg, "a sweep point holds one value per key")
        _check_value(arg, key, override.value())
