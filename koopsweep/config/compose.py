"""Compose configs outside a running Hydra app, and turn Hydra's errors into one line each.

The CLI composes and checks every job of a run or multirun here before anything trains, so a typo in the
tenth value of a sweep fails at once instead of after nine trainings.

Composing with Hydra costs 0.1-0.3 s a config, which a grid or a notebook loop pays for every cell. Hydra itself
composes in two steps: the defaults list (config-group choices such as `pruner=kmp`) and then the value overrides
(`pruner.fraction=0.9`) applied in order to the merged config (`ConfigLoaderImpl._apply_overrides_to_config`). So a
`Composer` composes once per distinct set of group choices and applies the value overrides to a copy with that same
Hydra function: the result is identical to a full compose (the tests check it point by point). It forgets what it
composed when a file under conf/ changes, so an edited config is never served stale.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from koopsweep.config import conf_dir, setup
from koopsweep.config.checks import check_config
from koopsweep.errors import ConfigError, first_line


def expand_overrides(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """The override list of every job a (multi)run will launch, as Hydra's basic sweeper expands it."""
    parsed = parse_overrides(overrides)
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not multirun:
        raise ConfigError(
            f"'{sweeps[0].input_line}' lists several values: add -m (--multirun) to run one job per value"
        )
    try:
        return BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as exc:
        raise ConfigError(f"cannot expand the sweep: {first_line(exc)}") from None


@functools.lru_cache(maxsize=1)
def overrides_parser() -> OverridesParser:
    """Hydra's override parser, built once (building its grammar costs more than parsing)."""
    return OverridesParser.create()


@functools.lru_cache(maxsize=4096)
def _parsed(line: str) -> Override:
    return overrides_parser().parse_override(line)


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's parse of each override, parsed once per distinct string (the grammar costs ms an override, and a
    grid repeats most of them); ConfigError (one line, how to quote) for one that does not parse."""
    try:
        return [copy.deepcopy(_parsed(line)) for line in overrides]  # a copy: nothing downstream shares them
    except OverrideParseException as exc:
        raise ConfigError(unparsable(overrides, exc)) from None


_OURS: list[bool] = []  # one entry per open hydra_context: True where that block initialised Hydra on conf_dir()


@contextlib.contextmanager
def hydra_context() -> Iterator[None]:
    """Hydra initialised on koopsweep's conf/ for the block, unless an app or caller already did (then kept)."""
    owns = not GlobalHydra.instance().is_initialized()
    if owns:
        initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3")
    _OURS.append(owns or (bool(_OURS) and _OURS[-1]))
    try:
        yield
    finally:
        _OURS.pop()
        if owns:
            GlobalHydra.instance().clear()


def _foreign_hydra() -> bool:
    """True inside someone else's Hydra (an app's, a test's): its search path, not conf_dir(), decides a compose."""
    return GlobalHydra.instance().is_initialized() and not (_OURS and _OURS[-1])


def compose_full(overrides: Sequence[str], config_name: str = "config") -> DictConfig:
    """One config composed by Hydra from scratch (no checks); ConfigError with a one-line explanation."""
    setup()
    with hydra_context():
        try:
            return compose(config_name=config_name, overrides=list(overrides))
        except COMPOSE_ERRORS as exc:
            raise ConfigError(explain(exc)) from None


def conf_fingerprint(folder: Path) -> tuple:
    """Every file under ``folder`` with its size and modification time: changes when a config is edited."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            info = os.stat(os.path.join(root, name))
            found.append((root, name, info.st_size, info.st_mtime_ns))
    return tuple(found)


class Composer:
    """Composes configs, caching the defaults-list part by group choices (see the module docstring); ``exact=True``
    composes each in full."""

    def __init__(self, exact: bool = False) -> None:
        self.exact = exact
        self._source: tuple = ()
        self._bases: dict[tuple[str, tuple[str, ...]], DictConfig] = {}
        self._is_group: dict[str, bool] = {}

    def compose(self, overrides: Sequence[str], config_name: str = "config", check: bool = True) -> DictConfig:
        """The config of ``overrides`` (checked unless ``check=False``); ConfigError (one line) if refused."""
        user = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
        if self.exact or _foreign_hydra():
            cfg = compose_full(user, config_name)
        else:
            groups, values = self._split(user)
            key = (config_name, groups)
            if key not in self._bases:
                self._bases[key] = compose_full(list(groups), config_name)
            cfg = copy.deepcopy(self._bases[key])
            try:
                ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            except (HydraException, OmegaConfBaseException) as exc:
                raise ConfigError(explain(exc)) from None
        if check:
            check_config(cfg)
        return cfg

    def _split(self, overrides: list[str]) -> tuple[tuple[str, ...], list[Override]]:
        """(group choices, value overrides); forgets every cached base first if conf/ changed since."""
        folder = conf_dir()
        source = (folder, conf_fingerprint(folder))
        if source != self._source:
            self._source, self._bases, self._is_group = source, {}, {}
        parsed = parse_overrides(overrides)  # hydra.* overrides were left out by `compose`
        for o in parsed:
            if o.key_or_group not in self._is_group:
                self._is_group[o.key_or_group] = (folder / o.key_or_group).is_dir()
        is_group = [o.package is not None or self._is_group[o.key_or_group] for o in parsed]
        groups = tuple(o.input_line for o, group in zip(parsed, is_group) if group)
        return groups, [o for o, group in zip(parsed, is_group) if not group]


_SHARED = Composer()


def shared_composer(exact: bool = False) -> Composer:
    """This process's Composer, whose cached bases serve every caller (a sweep's preflight, then the cells it runs
    in this process: each group choice is composed by Hydra once, not once per caller); a fresh one for ``exact``."""
    return Composer(exact=True) if exact else _SHARED


def compose_config(overrides: Sequence[str] = (), config_name: str = "config", check: bool = True) -> DictConfig:
    """Compose (and by default check) one run's config, raising ConfigError with a one-line explanation.

    ``overrides`` are the command line's (``koopsweep model=mnistnet ...``); run the result with ``run_experiment``.

    >>> from koopsweep import compose_config
    >>> cfg = compose_config(["model=mnistnet", "pruner=kmp", "pruner.compression=16"])
    >>> cfg.model._target_, cfg.pruner.name, cfg.pruner.compression
    ('koopsweep.models.MnistNet', 'kmp', 16.0)
    >>> compose_config(["optimizer.lrr=0.1"])
    Traceback (most recent call last):
    koopsweep.errors.ConfigError: unknown config key 'optimizer.lrr': did you mean 'optimizer.lr'?
    """
    return _SHARED.compose(overrides, config_name, check)


COMPOSE_ERRORS = (HydraException, OmegaConfBaseException, yaml.YAMLError, UnicodeDecodeError)
"""What composing a config can raise for a mistake in the configs or overrides (not a bug): one line each."""


def unparsable(overrides: Sequence[str], exc: OverrideParseException) -> str:
    """One line for overrides Hydra's grammar refuses: which one, and how to quote its value so that it parses."""
    parser = overrides_parser()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as own:
            key, sep, value = override.partition("=")
            if not sep:
                return f"cannot parse the override {override!r} ({first_line(own)}): write it as key=value"
            quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return (
                f"cannot parse the override {override!r} ({first_line(own)}): Hydra reads an unquoted value as plain "
                f"words, so quote a value with spaces, non-ASCII letters or brackets inside the argument, e.g. "
                f"'{key}={quoted}'"
            )
    return f"cannot parse overrides: {first_line(exc)}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``<file> line L, column C: <problem>`` from PyYAML's marks (lines and columns counted from 1)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    if mark is None:
        return f"a config file is not valid YAML: {problem}"
    return f"{mark.name} line {mark.line + 1}, column {mark.column + 1}: {problem} (not valid YAML)"


def _file_being_read(exc: BaseException) -> str:
    """The config file Hydra was reading when ``exc`` was raised (its file source keeps it in ``full_path``)."""
    tb, found = exc.__traceback__, "a config file"
    while tb is not None:
        found = str(tb.tb_frame.f_locals.get("full_path", found))
        tb = tb.tb_next
    return found


def explain(exc: BaseException) -> str:
    """One line for a composition error: the unknown option or key, with the valid choices or a guess; for YAML
    that does not parse, the file, line and column."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, yaml.YAMLError):
            return _yaml_problem(cause)
        if isinstance(cause, UnicodeDecodeError):
            return f"{_file_being_read(cause)} is not UTF-8 text ({cause.reason} at byte {cause.start})"
    text = f"{exc}\n{exc.__cause__ or ''}"
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        match = re.search(r"Could not find '([^']+)/([^']+)'", text)
        group, option = match.groups() if match else ("option", "?")
        return f"unknown {group} '{option}': choose one of {', '.join(sorted(exc.options))} (conf/{group}/)"
    match = re.search(r"Key '([^']+)' (?:is )?not in .*?full_key: (\S+)", text, re.S)
    if match:
        return f"unknown config key '{match.group(2)}': {_suggest(match.group(2))}"
    match = re.search(r"\n(.+?)\s+full_key: (\S+)", text, re.S)
    if match:
        return f"bad value for {match.group(2)}: {match.group(1).strip()}"
    return first_line(exc)


def _suggest(full_key: str) -> str:
    """'did you mean ...' from every dotted key of the schema, or the keys of the parent node."""
    from koopsweep.config.schema import GROUP_SCHEMAS, Config

    known = [k for k in OmegaConf.structured(Config) if k not in GROUP_SCHEMAS]
    for group, schema in GROUP_SCHEMAS.items():
        known += [f"{group}.{k}" for k in OmegaConf.structured(schema)]
    leaf = full_key.rsplit(".", 1)[-1]
    guess = difflib.get_close_matches(full_key, known, n=1, cutoff=0.75) or [
        k for k in known if k.rsplit(".", 1)[-1] == leaf
    ]
    if guess:
        return f"did you mean '{guess[0]}'?"
    parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    siblings = [k for k in known if k.startswith(parent + ".")] if parent else known
    return f"valid keys are {', '.join(siblings)}"
