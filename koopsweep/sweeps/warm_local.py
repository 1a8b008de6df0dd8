"""``koopsweep sweep local FILE --warm``: a sweep file's grid run by a few long-lived processes, not one per cell.

The launcher writes the cells, in the multirun's launch order, to ``<sweep dir>/cells.json`` and starts
``python -m koopsweep.sweeps.warm_local <sweep dir>/cells.json --jobs N``: N workers, each a
koopsweep.sweeps.cells.CellRunner (with one job, the launching process runs that command's loop itself). A worker
takes the next cell nobody has taken (it creates ``<sweep dir>/<n>/.taken`` exclusively), so the jobs share the
grid in the multirun's order with no coordinator, and every cell writes where the multirun writes it,
``<sweep dir>/<n>/``. SIGTERM/Ctrl-C reach every worker (koopsweep.sweeps.gpu_agents.run_agents): the cell that is
training saves its state and its worker exits with the signal's status; running the sweep again resumes it from
the store. The same loop serves W&B (koopsweep.sweeps.warm_agent) and the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from koopsweep.sweeps.cells import FAILED, REJECTED, CellRunner, Outcome, configure_console_logging
from koopsweep.sweeps.gpu_agents import Agent, run_agents
from koopsweep.sweeps.launch import Launch
from koopsweep.sweeps.launch import run as run_launch
from koopsweep.train.preempt import catch_stop_signals

QUEUE = "cells.json"
TAKEN = ".taken"
MODULE = "koopsweep.sweeps.warm_local"


def warm(launch: Launch, jobs: int) -> Launch:
    """The same launch run warm: ``jobs`` workers over ``<sweep dir>/cells.json`` (written by `run`)."""
    argv = [sys.executable, "-m", MODULE, str(launch.sweep_dir / QUEUE), "--jobs", str(jobs)]
    return Launch(launch.plan, argv, launch.env, launch.sweep_dir, launch.runs, launch.finished)


def write_queue(launch: Launch) -> Path:
    """``<sweep dir>/cells.json``: every cell's overrides, in the order Hydra's multirun would launch them, less the
    cells the launch found finished already."""
    path = launch.sweep_dir / QUEUE
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [point.argv for point in launch.plan.launch_order() if tuple(point.argv) not in launch.finished]
    path.write_text(json.dumps({"cells": cells}, indent=1))
    return path


def run(launch: Launch) -> list[Path]:
    """Write the queue and run the workers; the results.json files they left (LaunchError if one failed).

    One job runs in this process: it has imported torch and composed every cell already (the plan's preflight), and
    a worker process would pay both again (3-4 s a command). The cells carry their thread count and W&B mode, and
    SIGTERM/Ctrl-C stop this process's cell as they stop a worker's. Several jobs run as worker processes."""
    queue = write_queue(launch)
    if _jobs(launch.argv) > 1:
        return run_launch(launch)

    def here() -> int:
        configure_console_logging()
        return work(queue)

    return run_launch(launch, here)


def _jobs(argv: Sequence[str]) -> int:
    """The --jobs of a worker command built by `warm`."""
    return int(argv[argv.index("--jobs") + 1])


def take(folder: Path) -> bool:
    """Claim the cell whose run folder is ``folder``; False when another worker (or an earlier one) has it."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / TAKEN, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def work(queue: Path, runner: CellRunner | None = None) -> int:
    """One worker: run every cell of ``queue`` that is still free, in order; the exit status of the worker."""
    cells: list[list[str]] = json.loads(queue.read_text())["cells"]
    runner = runner or CellRunner()
    outcomes: list[Outcome] = []
    with catch_stop_signals() as stop:  # a signal between two cells: start no more
        for number, argv in enumerate(cells):
            if stop() is not None:
                return 128 + stop()  # type: ignore[operator]
            folder = queue.parent / str(number)
            if not take(folder):
                continue
            outcome = runner.run(argv, folder)
            outcomes.append(outcome)
            if outcome.stops_the_loop:
                return outcome.exit_code
    bad = [f"{o.out_dir.name if o.out_dir else '?'} ({o.status})" for o in outcomes if o.status in (FAILED, REJECTED)]
    ended = f"; not finished: {', '.join(bad)}" if bad else ""
    print(f"koopsweep: warm worker {os.getpid()} ran {len(outcomes)} cells{ended}", flush=True)
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m koopsweep.sweeps.warm_local QUEUE [--jobs N]``: N workers over one queue (1: this process)."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("queue", type=Path, help=f"the sweep's {QUEUE} (written by `koopsweep sweep local --warm`)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1: run the cells here)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.queue.is_file():
        parser.error(f"{args.queue}: no such file (`koopsweep sweep local FILE --warm` writes it)")
    if args.jobs <= 1:
        configure_console_logging()
        return work(args.queue)
    worker = Agent([sys.executable, "-m", MODULE, str(args.queue)])
    return run_agents([worker] * args.jobs)


if __name__ == "__main__":
    sys.exit(main())
