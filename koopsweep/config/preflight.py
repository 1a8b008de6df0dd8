"""Check every job of a ``koopsweep`` command line before Hydra runs it, composed by Hydra's own config loader.

Why before Hydra: Hydra reports a composition error in several lines with exit code 1, and a multirun whose tenth
job is impossible would fail after nine trainings. Why with Hydra's loader, built the way ``hydra.main`` builds it:
a command line may bring its own configs (``-cd``, ``-cp``, ``-cn``, ``hydra.searchpath``) and sweep syntax that
needs the config repository (``pruner=glob(*,exclude=[none])``); composing from the packaged conf/ only would refuse
what Hydra runs. Every job is composed exactly as the basic sweeper and launcher will compose it
(``load_sweep_config``), then checked (koopsweep.config.checks); nothing is written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import (
    create_automatic_config_search_path,
    detect_calling_file_or_module_from_task_function,
    get_args_parser,
)
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import setup_globals
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from koopsweep.config import conf_dir, setup
from koopsweep.config.checks import check_config
from koopsweep.config.compose import COMPOSE_ERRORS, explain, unparsable
from koopsweep.config.grid_size import run_cap
from koopsweep.errors import ConfigError, first_line
from koopsweep.progress import progress

CONFIG_NAME = "config"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _raise(message: str) -> NoReturn:
    raise ConfigError(message)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Hydra's own command-line parser, flags and overrides in any order; its errors as one-line ConfigErrors."""
    parser = get_args_parser()
    parser.error = _raise  # type: ignore[method-assign]
    return parser.parse_intermixed_args(list(argv))


_SWITCHES = (
    ("help", "--help"),
    ("hydra_help", "--hydra-help"),
    ("run", "--run"),
    ("multirun", "--multirun"),
    ("shell_completion", "--shell-completion"),
    ("resolve", "--resolve"),
)
_VALUED = (
    ("cfg", "--cfg"),
    ("package", "--package"),
    ("info", "--info"),
    ("config_path", "--config-path"),
    ("config_name", "--config-name"),
    ("config_dir", "--config-dir"),
    ("experimental_rerun", "--experimental-rerun"),
)


def normalize(argv: Sequence[str]) -> list[str]:
    """``argv`` with Hydra's flags first and the overrides after them, the only order ``hydra.main`` parses.

    `koopsweep seed=1 -m lr=0.1,0.2` is then a multirun, as a user means it, instead of an argparse error.
    """
    args = parse_args(argv)
    flags = [flag for name, flag in _SWITCHES if getattr(args, name)]
    flags += [f"{flag}={getattr(args, name)}" for name, flag in _VALUED if getattr(args, name) is not None]
    return [*flags, *args.overrides]


def passthrough(args: argparse.Namespace) -> bool:
    """Help, config printing, info and shell completion: Hydra answers them, nothing runs."""
    return bool(args.help or args.hydra_help or args.cfg or args.info or args.shell_completion)


def config_loader(args: argparse.Namespace, task_function: Callable[..., Any]) -> ConfigLoaderImpl:
    """The config loader ``hydra.main(config_path=<koopsweep's conf/>)`` builds for this command line."""
    setup()
    setup_globals()  # Hydra's resolvers (now, hydra, ...), as in a running app
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task_function)
    search_path = create_automatic_config_search_path(calling_file, calling_module, args.config_path or str(conf_dir()))
    if args.config_dir is not None:
        folder = os.path.abspath(args.config_dir)
        if not os.path.isdir(folder):
            raise ConfigError(f"--config-dir {args.config_dir}: {folder} is not a folder")
        search_path.prepend("command-line", f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
    return ConfigLoaderImpl(config_search_path=search_path)


def _compose(loader: ConfigLoaderImpl, config_name: str, overrides: list[str], mode: RunMode) -> DictConfig:
    try:
        return loader.load_configuration(config_name=config_name, overrides=overrides, run_mode=mode)
    except COMPOSE_ERRORS as exc:
        raise ConfigError(explain(exc)) from None


def _parse(overrides: Sequence[str], loader: ConfigLoaderImpl) -> list[Override]:
    try:
        return OverridesParser.create(config_loader=loader).parse_overrides(list(overrides))
    except OverrideParseException as exc:
        raise ConfigError(unparsable(overrides, exc)) from None


def _configured_mode(loader: ConfigLoaderImpl, config_name: str, overrides: list[str]) -> Any:
    """``hydra.mode`` as the config and overrides set it (None when unset or not composable), as Hydra reads it."""
    try:
        cfg = loader.load_configuration(
            config_name=config_name, overrides=overrides, run_mode=RunMode.MULTIRUN, validate_sweep_overrides=False
        )
        return cfg.hydra.mode
    except Exception:
        return None


def _jobs(master: DictConfig, loader: ConfigLoaderImpl) -> list[list[str]] | None:
    """Each job's overrides as the basic sweeper will launch them; None for another sweeper (it decides at run time)."""
    if master.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = master.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if OmegaConf.is_config(params) else {}
    arguments = [f"{key}={value}" for key, value in params.items()]  # type: ignore[union-attr]
    arguments += OmegaConf.to_container(master.hydra.overrides.task, resolve=False)  # type: ignore[operator]
    parsed = _parse(arguments, loader)
    _say_size(math.prod(len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()))
    try:
        return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    except HydraException as exc:
        raise ConfigError(f"cannot expand the sweep: {first_line(exc)}") from None


SAY_SIZE_FROM = 1000
"""A multirun of this many jobs or more says its size before checking them (smaller ones check in a moment)."""


def _say_size(jobs: int) -> None:
    """Refuse a multirun above the run cap (koopsweep.config.grid_size) before expanding it; say its size
    when checking it takes a while."""
    cap = run_cap()
    if jobs > cap:
        raise ConfigError(
            f"the multirun has {jobs:,} jobs, above the cap of {cap:,}: sweep fewer values, or raise the cap with "
            f"KOOPSWEEP_MAX_RUNS={jobs}"
        )
    if jobs >= SAY_SIZE_FROM:
        print(f"koopsweep: {jobs:,} jobs in the multirun; checking each", file=sys.stderr, flush=True)


def check_command_line(argv: Sequence[str], task_function: Callable[..., Any]) -> int:
    """Compose and check every job ``koopsweep argv`` will launch; returns the number of jobs (0: not known here).

    Raises ConfigError (one line) for the first job that does not compose or is impossible.
    """
    args = parse_args(argv)
    if passthrough(args):
        return 0
    if args.experimental_rerun is not None:
        raise ConfigError(
            "--experimental-rerun loads a pickled config, which koopsweep never unpickles: rerun the job with the "
            "overrides in its .hydra/overrides.yaml instead"
        )
    loader = config_loader(args, task_function)
    config_name = args.config_name or CONFIG_NAME
    overrides = list(args.overrides)
    sweeps = [o for o in _parse(overrides, loader) if o.is_sweep_override()]
    multirun = args.multirun
    if sweeps and not multirun:  # a config may set hydra.mode=MULTIRUN itself
        multirun = _configured_mode(loader, config_name, overrides) == RunMode.MULTIRUN
        if not multirun:
            raise ConfigError(
                f"'{sweeps[0].input_line}' lists several values: add -m (--multirun) to run one job per value"
            )
    if not multirun:
        cfg = _compose(loader, config_name, overrides, RunMode.RUN)
        if cfg.hydra.get("mode") != RunMode.MULTIRUN:
            check_config(cfg)
            return 1
    master = _compose(loader, config_name, overrides, RunMode.MULTIRUN)
    jobs = _jobs(master, loader)
    if jobs is None:
        return 0
    for number, job in enumerate(progress(jobs, desc="checking jobs", leave=False)):
        try:
            cfg = loader.load_sweep_config(master, job)
        except COMPOSE_ERRORS as exc:
            raise ConfigError(f"job {number} ({' '.join(job)}): {explain(exc)}") from None
        try:
            check_config(cfg)
        except ConfigError as exc:
            raise ConfigError(f"job {number} ({' '.join(job)}): {exc}" if len(jobs) > 1 else str(exc)) from None
    return len(jobs)
