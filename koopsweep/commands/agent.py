"""``koopsweep agent SWEEP``: this box's share of a W&B sweep, one ``wandb agent`` per visible GPU.

What the container image runs on each box of a multi-box sweep (``docker run --gpus all IMAGE agent SWEEP``); on a
box without docker it is the same command. See koopsweep.sweeps.gpu_agents for the detection, pinning and signal
handling.
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
        description="Start one `wandb agent SWEEP` per visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi -L), each "
        "pinned to its GPU with CUDA_VISIBLE_DEVICES; one agent on a CPU host. SIGTERM/SIGINT stop them all.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="the sweep: ENTITY/PROJECT/SWEEP_ID as `koopsweep sweep create` prints it")
    parser.add_argument("--agents", type=int, help="number of agents (default: one per GPU; more share GPUs)")
    parser.add_argument("--count", type=int, help="runs per agent, then it exits (default: until the sweep ends)")
    parser.add_argument("--dry-run", action="store_true", help="print each agent's command and exit")
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
    return agenting.plan_agents(args.sweep, env, devices, args.agents, args.count, _cores(), _wandb())


def main(argv: Sequence[str]) -> None:
    """Entry point of ``koopsweep agent``."""
    args = _parser().parse_args(list(argv))
    env = dict(os.environ)
    planned = plan(args, env)
    gpus = len({a.device.cuda_id for a in planned if a.device})
    plural = "s" if len(planned) != 1 else ""
    print(f"{len(planned)} agent{plural} for {args.sweep} on {gpus or 'no'} GPU{'s' if gpus != 1 else ''}:")
    for agent in planned:
        print(f"  {agent.shell()}")
    if args.dry_run:
        return
    from koopsweep.sweeps.launch import offline_reason

    reason = offline_reason(env)
    if reason is not None:
        raise ConfigError(
            f"wandb agents cannot reach the W&B server here ({reason}): they need WANDB_API_KEY "
            "(docker run -e WANDB_API_KEY ...) and no offline WANDB_MODE; offline, run the grid with "
            "`koopsweep sweep local`"
        )
    sys.stdout.flush()
    code = agenting.run_agents(planned, env)
    if code != 0:
        raise AgentsFailed(f"an agent exited with status {code}; see its log above", code)
