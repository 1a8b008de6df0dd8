"""The ``koopsweep`` command: check every job's config, then hand over to Hydra (run or multirun).

User mistakes end in one line on stderr and exit code 2, before any data is loaded or any training starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from koopsweep.errors import DIVERGED_EXIT_CODE, KoopsweepError, machine_error


def fail(error: KoopsweepError) -> None:
    """Print one line and exit with the error's code."""
    print(f"koopsweep: error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code)


def preflight(argv: Sequence[str]) -> int:
    """Compose and check, with Hydra's own config loader, every job the command line will launch; the job count."""
    from koopsweep.config.preflight import check_command_line

    return check_command_line(argv, _task)


def _task(cfg) -> float | None:
    from koopsweep.config.checks import check_config
    from koopsweep.train.run import run_experiment

    try:
        check_config(cfg)  # again, for jobs a sweeper other than Hydra's basic one chose at run time
        results = run_experiment(cfg)
    except KoopsweepError as error:
        fail(error)
    except OSError as exc:
        fail(machine_error(exc))
    if results.get("status") == "diverged" and not _in_a_sweep():
        raise SystemExit(DIVERGED_EXIT_CODE)
    return results.get("metrics", {}).get("final/test_acc")


def _in_a_sweep() -> bool:
    """A job of a multirun, or a run a W&B agent started: a diverged cell is one result of the grid, so the process
    exits 0 and the sweep goes on (a W&B agent gives up after a few non-zero exits)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from koopsweep.config.targets import sweep_origin

    if sweep_origin() is not None:
        return True
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_hydra(argv: Sequence[str]) -> None:
    """Run the Hydra app on ``argv`` (single run or ``-m`` multirun)."""
    import hydra

    from koopsweep.config import conf_dir, setup

    setup()
    app = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)
    saved, full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [saved[0] if saved else "koopsweep", *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's own failures (writing .hydra/ on a full disk) reach main()
    try:
        app()
    finally:
        sys.argv = saved
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


def _printable_anywhere() -> None:
    """Characters the terminal's encoding lacks (−, ±, λ under an ASCII or Latin-1 locale) print as '?', not crash."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and stream.errors in ("strict", "surrogateescape"):
            stream.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: ``koopsweep [subcommand] [overrides]``."""
    _printable_anywhere()
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
        except OSError as exc:  # the disk or the file system, not the input
            fail(machine_error(exc))
        return
    from koopsweep.config.preflight import normalize
    from koopsweep.config.targets import check_sweep_targets, sweep_origin
    from koopsweep.sweeps.requeue import strip_run_config

    try:
        argv = strip_run_config(argv)  # a W&B agent resuming a sweep run re-passes its whole config
        if sweep_origin() is not None:  # overrides a W&B sweep chose: allowed, not trusted
            check_sweep_targets(argv)
        argv = normalize(argv)
        preflight(argv)
    except KoopsweepError as error:
        fail(error)
    try:
        run_hydra(argv)
    except KoopsweepError as error:
        fail(error)
    except OSError as exc:
        fail(machine_error(exc))
