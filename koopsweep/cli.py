"""The ``koopsweep`` command: check every job's config, then hand over to Hydra (run or multirun).

User mistakes end in one line on stderr and exit code 2, before any data is loaded or any training starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from koopsweep.errors import KoopsweepError

# Hydra flags that take a value, and flags after which koopsweep must not pre-compose (help, info, completion).
_VALUE_FLAGS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--experimental-rerun"}
_PASSTHROUGH_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--version", "--cfg", "-c"}


def fail(error: KoopsweepError) -> None:
    """Print one line and exit with the error's code."""
    print(f"koopsweep: error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code)


def split_argv(argv: Sequence[str]) -> tuple[list[str], bool, str, bool]:
    """(overrides, multirun, config_name, passthrough) from a Hydra command line."""
    overrides: list[str] = []
    multirun, passthrough, config_name = False, False, "config"
    args = iter(argv)
    for arg in args:
        flag, _, inline = arg.partition("=")
        if arg in ("-m", "--multirun"):
            multirun = True
        elif flag in _VALUE_FLAGS:
            value = inline or next(args, "")
            if flag in ("-cn", "--config-name"):
                config_name = value
        elif flag in _PASSTHROUGH_FLAGS or arg.startswith("-"):
            passthrough = True
        else:
            overrides.append(arg)
    return overrides, multirun, config_name, passthrough


def preflight(argv: Sequence[str]) -> int:
    """Compose and check the config of every job the command line will launch; return the number of jobs."""
    from koopsweep.config.compose import compose_config, expand_overrides

    overrides, multirun, config_name, passthrough = split_argv(argv)
    if passthrough:
        return 0
    jobs = expand_overrides(overrides, multirun)
    for job in jobs:
        compose_config(job, config_name=config_name)
    return len(jobs)


def _task(cfg) -> float | None:  # noqa: ANN001 - Hydra passes a DictConfig
    from koopsweep.train.run import run_experiment

    try:
        results = run_experiment(cfg)
    except KoopsweepError as error:
        fail(error)
    return results.get("metrics", {}).get("final/test_acc")


def run_hydra(argv: Sequence[str]) -> None:
    """Run the Hydra app on ``argv`` (single run or ``-m`` multirun)."""
    import hydra

    from koopsweep.config import conf_dir, setup

    setup()
    app = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "koopsweep", *argv]
    try:
        app()
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: ``koopsweep [subcommand] [overrides]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from koopsweep.commands import COMMANDS

    if "--version" in argv and not (argv and argv[0] in COMMANDS):  # before Hydra, which prints only its own
        from koopsweep.versions import version_text

        print(version_text())
        return
    if argv and argv[0] in COMMANDS:
        try:
            COMMANDS[argv[0]](argv[1:])
        except KoopsweepError as error:
            fail(error)
        return
    try:
        preflight(argv)
    except KoopsweepError as error:
        fail(error)
    run_hydra(argv)
