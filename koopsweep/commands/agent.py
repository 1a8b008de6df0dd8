"""``koopsweep agent SWEEP``: this box's share of a W&B sweep, one warm agent per visible GPU.

What the container image runs on each box of a multi-box sweep (``docker run --gpus all IMAGE agent SWEEP``); on a
box without docker it is the same command. Each agent is ``koopsweep agent --in-process SWEEP``: one long-lived
process that runs its cells itself (koopsweep.sweeps.warm_agent), instead of a ``wandb agent`` starting a process
per cell (``--cold``). See koopsweep.sweeps.gpu_agents for the detection, pinning and signal handling.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Sequence

from koopsweep.errors import ConfigError, KoopsweepError
from koopsweep.sweeps import gpu_agents as agenting

EPILOG = """examples:
  koopsweep sweep create timing_kmp                     # once, anywhere: prints ENTITY/PROJECT/SWEEP_ID
  koopsweep agent ENTITY/PROJECT/SWEEP_ID               # on each box: one agent per GPU (one on a CPU host)
  koopsweep agent ENTITY/PROJECT/SWEEP_ID --agents 2 --dry-run
  CUDA_VISIBLE_DEVICES=2,3 koopsweep agent ENTITY/PROJECT/SWEEP_ID   # only GPUs 2 and 3
  koopsweep agent ENTITY/PROJECT/SWEEP_ID --in-process  # one warm agent, here (in place of `wandb agent SWEEP`)
  koopsweep agent ENTITY/PROJECT/SWEEP_ID --cold        # `wandb agent`: a fresh process per cell
"""
_SWEEP = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


class AgentsFailed(KoopsweepError):
    """An agent exited with an error; exit with its status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koopsweep agent",
        description="Start one agent per visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi -L), each pinned to its "
        "GPU with CUDA_VISIBLE_DEVICES; one agent on a CPU host. Each runs its cells in one long-lived process "
        "(torch, configs, data and trunk states stay loaded). SIGTERM/SIGINT stop them all.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="the sweep: ENTITY/PROJECT/SWEEP_ID as `koopsweep sweep create` prints it")
    parser.add_argument("--agents", type=int, help="number of agents (default: one per GPU; more share GPUs)")
    parser.add_argument("--count", type=int, help="runs per agent, then it exits (default: until the sweep ends)")
    parser.add_argument("--dry-run", action="store_true", help="print each agent's command and exit")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--in-process",
        action="store_true",
        help="be one agent: run the cells in this process, on the devices it sees (what each GPU's agent runs)",
    )
    how.add_argument("--cold", action="store_true", help="start `wandb agent` instead: one process per cell")
    return parser


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _wandb() -> list[str]:
    """The wandb CLI: on PATH, else the wandb package of this interpreter."""
    exe = shutil.which("wandb")
    return [exe] if exe else [sys.executable, "-m", "wandb"]


def plan(args: argparse.Namespace, env: dict[str, str]) -> list[agenting.Agent]:
    """Check the arguments and plan the agents; raise ConfigError with one line for a user mistake."""
    if not _SWEEP.match(args.sweep):
        raise ConfigError(
            f"sweep {args.sweep!r}: give the sweep as ENTITY/PROJECT/SWEEP_ID (from `koopsweep sweep create`)"
        )
    if args.agents is not None and args.agents < 1:
        raise ConfigError(f"--agents {args.agents}: give at least 1")
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count {args.count}: give at least 1")
    devices = agenting.visible_devices(env)
    program, flags = (_wandb(), []) if args.cold else ([sys.executable, "-m", "koopsweep"], ["--in-process"])
    return agenting.plan_agents(args.sweep, env, devices, args.agents, args.count, _cores(), program, flags)


def _check_online(env: dict[str, str]) -> None:
    from koopsweep.sweeps.launch import offline_reason

    reason = offline_reason(env)
    if reason is not None:
        raise ConfigError(
            f"wandb agents cannot reach the W&B server here ({reason}): they need WANDB_API_KEY "
            "(docker run -e WANDB_API_KEY ...) and no offline WANDB_MODE; offline, run the grid with "
            "`koopsweep sweep local FILE --warm`"
        )


def in_process(args: argparse.Namespace, env: dict[str, str]) -> None:
    """``--in-process``: this process is the agent; exits with the status a cold agent's run would have had."""
    if not _SWEEP.match(args.sweep):
        raise ConfigError(
            f"sweep {args.sweep!r}: give the sweep as ENTITY/PROJECT/SWEEP_ID (from `koopsweep sweep create`)"
        )
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count {args.count}: give at least 1")
    if args.dry_run:
        print(f"one warm agent for {args.sweep} in this process (pid {os.getpid()})")
        return
    _check_online(env)
    from koopsweep.sweeps.warm_agent import serve

    code = serve(args.sweep, args.count)
    if code != 0:
        raise AgentsFailed(f"the warm agent stopped with status {code}", code)


def main(argv: Sequence[str]) -> None:
    """Entry point of ``koopsweep agent``."""
    args = _parser().parse_args(list(argv))
    env = dict(os.environ)
    if args.in_process:
        in_process(args, env)
        return
    planned = plan(args, env)
    gpus = len({a.device.cuda_id for a in planned if a.device})
    plural = "s" if len(planned) != 1 else ""
    print(f"{len(planned)} agent{plural} for {args.sweep} on {gpus or 'no'} GPU{'s' if gpus != 1 else ''}:")
    for agent in planned:
        print(f"  {agent.shell()}")
    if args.dry_run:
        return
    _check_online(env)
    sys.stdout.flush()
    code = agenting.run_agents(planned, env)
    if code != 0:
        raise AgentsFailed(f"an agent exited with status {code}; see its log above", code)
