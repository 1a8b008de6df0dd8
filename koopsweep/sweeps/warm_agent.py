"""A W&B sweep agent that runs its cells in this process: ``wandb.agent(SWEEP, function=...)`` over a CellRunner.

W&B's in-process agent (wandb.agents.pyagent) asks the server for the next run, writes that run's config to the
file named by ``WANDB_SWEEP_PARAM_PATH``, sets ``WANDB_SWEEP_ID``/``WANDB_RUN_ID`` and calls the function in a
thread of its own. The function here reads that config as ``wandb.init`` would, turns it into the command line
the sweep's ``command`` gives a cold agent (koopsweep.sweeps.agent_command, the requeue keys stripped as
koopsweep.cli strips them) and runs it as a cell; the cell's Tracker then opens the W&B run the agent assigned,
with the same name, group, config and summary as a cell in a process of its own.

The agent runs in a daemon thread; the main thread holds the SIGTERM/SIGINT handlers (koopsweep.train.preempt
hands their flag to the cell's thread), so a stop signal preempts the cell that is training, which saves its
state and finishes its W&B run as preempted; then this process exits with 128 + the signal, as the cold agent's
run would. A cell that fails or diverges ends as its W&B run's failure or result and the agent goes on; a point
whose config is refused fails its W&B run with the one-line reason.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from koopsweep.config.targets import check_sweep_targets
from koopsweep.errors import ConfigError
from koopsweep.sweeps.agent_command import app_argv
from koopsweep.sweeps.cells import FAILED, REJECTED, CellRunner, Outcome, configure_console_logging
from koopsweep.sweeps.requeue import strip_run_config
from koopsweep.sweeps.spec import KNOWN_KEYS, SweepSpec, Value, parse_spec
from koopsweep.train.preempt import catch_stop_signals

PARAM_PATH = "WANDB_SWEEP_PARAM_PATH"
AgentFunction = Callable[..., None]  # wandb.agent's signature: (sweep_id, function=..., count=...)


def fetch_spec(sweep: str) -> SweepSpec:
    """The sweep's file as the W&B server holds it (its ``command`` gives every cell's fixed overrides)."""
    import wandb

    try:
        raw = dict(wandb.Api().sweep(sweep).config)
    except Exception as exc:  # wandb raises its own CommError, ValueError, ... for a wrong id or no access
        raise ConfigError(f"sweep {sweep}: cannot read it from the W&B server ({type(exc).__name__}: {exc})") from None
    return parse_spec({k: v for k, v in raw.items() if k in KNOWN_KEYS}, Path(sweep))


def sweep_params(path: str | None = None) -> dict[str, Value]:
    """The run config the agent wrote for this run (``{key: {value: v}}`` YAML), as plain ``{key: v}``."""
    where = path or os.environ.get(PARAM_PATH)
    if not where:
        raise ConfigError(f"{PARAM_PATH} is not set: this function runs under wandb.agent(SWEEP, function=...)")
    raw = yaml.safe_load(Path(where).read_text()) or {}
    return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in raw.items() if k != "wandb_version"}


def cell_argv(spec: SweepSpec, values: Mapping[str, Any]) -> list[str]:
    """What a cold agent's ``koopsweep`` would run for this run config: the command's overrides, requeue keys out."""
    return strip_run_config(app_argv(spec, values))


def _fail_unstarted(message: str) -> None:
    """A refused point never opened its W&B run: open it (the agent's run id) and finish it failed, with why."""
    from koopsweep.tracking import Tracker

    tracker = Tracker.start(mode="auto", project="koopsweep", run_dir=Path.cwd())
    tracker.summary({"run/error": message})
    tracker.finish("failed", exit_code=2)


class WarmAgent:
    """This process's agent: the function W&B calls per run, and what became of each run."""

    def __init__(self, spec: SweepSpec, runner: CellRunner | None = None) -> None:
        self.spec = spec
        self.runner = runner or CellRunner()
        self.outcomes: list[Outcome] = []
        self.stop: Callable[[], int | None] = lambda: None

    def __call__(self) -> None:
        """One run, as wandb.agent calls it (no arguments, the run's config in the environment); never raises."""
        if self.stop() is not None:
            return  # stopping: take no more (the run stays unstarted, and the server hands it out again)
        try:
            argv = cell_argv(self.spec, sweep_params())
            check_sweep_targets(argv)  # what the W&B server chose, refused before anything is imported
        except (ConfigError, OSError, yaml.YAMLError) as exc:
            print(f"koopsweep: error: {exc}", file=sys.stderr, flush=True)
            outcome = Outcome(REJECTED, 2, None, str(exc))
        else:
            outcome = self.runner.run(argv)
        if outcome.status == REJECTED:
            _fail_unstarted(outcome.message)
        self.outcomes.append(outcome)

    def serve(self, sweep: str, count: int | None = None, agent: AgentFunction | None = None) -> int:
        """Run the agent until the sweep is done, ``count`` runs are done, or a stop signal; the exit status."""
        if agent is None:
            import wandb

            agent = wandb.agent
        with catch_stop_signals() as stop:
            self.stop = stop
            thread = threading.Thread(target=agent, args=(sweep,), kwargs={"function": self, "count": count})
            thread.daemon = True  # W&B's loop may be waiting for the server: never wait for it at exit
            thread.start()
            while thread.is_alive():
                thread.join(0.2)
                if self.outcomes and self.outcomes[-1].stops_the_loop:
                    return self.outcomes[-1].exit_code
                if stop() is not None and not self.runner.busy:
                    return 128 + stop()  # type: ignore[operator]
        if self.outcomes and self.outcomes[-1].stops_the_loop:
            return self.outcomes[-1].exit_code
        return 0

    def report(self) -> str:
        """One line: how many runs ended how."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        ended = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
        failed = sum(counts.get(s, 0) for s in (FAILED, REJECTED))
        return f"koopsweep: warm agent ran {len(self.outcomes)} runs ({ended})" + (
            f"; {failed} failed, see above" if failed else ""
        )


def serve(sweep: str, count: int | None = None) -> int:
    """``koopsweep agent --in-process SWEEP``: this process's share of a W&B sweep, warm; the exit status."""
    configure_console_logging()
    agent = WarmAgent(fetch_spec(sweep))
    code = agent.serve(sweep, count)
    print(agent.report(), flush=True)
    return code
