"""``koopsweep sweep validate|local|slurm|create FILE``: one W&B sweep file, online or offline.

The same file serves `wandb sweep FILE` + `wandb agent` (online) and Hydra multiruns (offline, locally or on SLURM),
so the grid is defined once. Every verb first composes and checks every grid point (see koopsweep.sweeps.plan).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from koopsweep.errors import ConfigError

EPILOG = """examples:
  koopsweep sweep validate smoke                                   # a sweep shipped with koopsweep, by name
  koopsweep sweep validate sweeps/timing_kmp.yaml                  # a file: yours, or one in a checkout
  koopsweep sweep local sweeps/smoke.yaml --jobs 2 --threads 1
  koopsweep sweep local sweeps/smoke.yaml --warm                   # cells in one long-lived process, not one each
  koopsweep sweep local sweeps/timing_kmp.yaml --only seed=0,1      # a slice: two of the file's three seeds
  koopsweep sweep local sweeps/timing_kmp.yaml --skip-finished      # again after a stop: only what is not done
  koopsweep sweep local sweeps/converged_mnistnet.yaml device=cuda --dry-run
  koopsweep sweep slurm sweeps/converged_resnet20.yaml --partition gpu --time 600 --gpus 1 --cpus 8 --dry-run
  koopsweep sweep create sweeps/timing_kmp.yaml --project koopsweep
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koopsweep sweep",
        description="Check, run (locally or on SLURM) or create on W&B a grid sweep file in W&B's format.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{validate,local,slurm,create}")

    def verb(name: str, help_text: str, extra: bool = True) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "file",
            help="a sweep file (W&B format, method: grid), e.g. sweeps/smoke.yaml, or the name of a shipped sweep "
            "(smoke, converged_mnistnet, converged_resnet20, timing_kmp, timing_kgp)",
        )
        sub.add_argument(
            "--max-runs",
            type=int,
            default=None,
            metavar="N",
            help="check and run grids of up to N runs (default 100,000, or $KOOPSWEEP_MAX_RUNS)",
        )
        if extra:
            sub.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. device=cuda")
            sub.add_argument(
                "--latest-first", action="store_true", help="launch each trunk's latest pruning time first"
            )
            sub.add_argument(
                "--only",
                action="append",
                default=[],
                metavar="KEY=V1,V2",
                help="run a slice of the grid: only these values of a swept key (repeatable), e.g. --only seed=0,1",
            )
        return sub

    validate = verb("validate", "compose every grid point; print runs, trunks and the parameters")
    validate.add_argument("--exact", action="store_true", help="compose every point in full (slower, same result)")
    validate.add_argument("--list", action="store_true", help="also print each run's command, in launch order")

    local = verb("local", "run the grid here as a Hydra multirun (W&B offline; `wandb sync` later)")
    local.add_argument("--jobs", type=int, default=1, help="parallel jobs (joblib launcher when > 1)")
    local.add_argument("--threads", type=int, default=None, help="torch threads per job (default: cores / jobs)")
    local.add_argument("--wandb", choices=("offline", "disabled"), default="offline", help="W&B mode (default offline)")
    local.add_argument("--dry-run", action="store_true", help="print the command and exit")
    local.add_argument(
        "--warm",
        action="store_true",
        help="run the cells in --jobs long-lived processes (torch, configs, data and trunk states stay loaded) "
        "instead of one process per cell; same results and run folders",
    )
    local.add_argument(
        "--skip-finished",
        action="store_true",
        help="leave out the cells that finished in an earlier `sweep local` of this experiment (same branch and "
        "settings); the rest run as with --warm",
    )

    slurm = verb("slurm", "submit the grid as a SLURM array through conf/hydra/launcher/slurm.yaml")
    slurm.add_argument("--partition", help="SLURM partition (preset: the cluster's default)")
    slurm.add_argument("--time", type=int, dest="time_min", help="time limit per job in minutes (preset: 240)")
    slurm.add_argument("--gpus", type=int, help="GPUs per job (preset: 1)")
    slurm.add_argument("--cpus", type=int, help="CPUs per job, also torch threads (preset: 4)")
    slurm.add_argument("--wandb", choices=("auto", "online", "offline", "disabled"), default="auto", help="W&B mode")
    slurm.add_argument("--dry-run", action="store_true", help="print the command and launcher config, and exit")
    slurm.add_argument(
        "--trunks-first",
        action="store_true",
        help="first submit one job per trunk and wait for it, then the whole grid (no job idles on a trunk lock)",
    )

    create = verb("create", "create the sweep on the W&B server and print the `wandb agent` command", extra=False)
    create.add_argument("--project", help="W&B project (default: the file's project, else logger.project)")
    create.add_argument("--entity", help="W&B entity (default: the file's entity, else your default entity)")
    return parser


def _validate(args: argparse.Namespace) -> None:
    from koopsweep.sweeps.plan import plan_sweep

    plan = plan_sweep(args.file, args.overrides, exact=args.exact, latest_first=args.latest_first, only=args.only)
    print(plan.table())
    if args.list:
        from koopsweep.sweeps.agent_command import agent_command

        for i, point in enumerate(plan.launch_order()):
            print(f"{i:>5} {point.trunk}  {' '.join(agent_command(plan.spec, point.values)[1:])}")


def _launch(
    launch,
    dry_run: bool,
    show_launcher: bool = False,
    trunks_first: bool = False,
    warm: bool = False,
) -> None:
    from koopsweep.sweeps import launch as launching
    from koopsweep.sweeps import warm_local

    plan = launch.plan
    print(plan.table())
    phases = [launching.trunk_phase(launch), launch] if trunks_first else [launch]
    for phase in phases:
        print(f"results: {phase.sweep_dir}/<job>/results.json")
        print(f"command: {phase.shell()}")
    if show_launcher:
        from omegaconf import OmegaConf

        hydra = [a for a in launch.argv if a.startswith(("hydra/launcher=", "hydra.launcher."))]
        config = launching.launcher_config(hydra, plan.points[0].argv)
        print("launcher (hydra.launcher):")
        print("  " + OmegaConf.to_yaml(config).strip().replace("\n", "\n  "))
    if dry_run:
        return
    for phase in phases:
        results = warm_local.run(phase) if warm else launching.run(phase)
        print(f"{len(results)} of {phase.runs} runs wrote results.json under {phase.sweep_dir}")
    offline = launching.offline_runs(launch.sweep_dir)
    if offline:
        print(f"{len(offline)} offline W&B runs; upload them with: wandb sync {launch.sweep_dir}/*/wandb/offline-run-*")


def _say_size(args: argparse.Namespace) -> None:
    """The grid's size, before anything is composed; refused above the cap (--max-runs, which the multirun a verb
    launches inherits through $KOOPSWEEP_MAX_RUNS)."""
    from koopsweep.sweeps.plan import grid_size

    if args.max_runs is not None:
        if args.max_runs < 1:
            raise ConfigError(f"--max-runs {args.max_runs}: give at least 1")
        os.environ["KOOPSWEEP_MAX_RUNS"] = str(args.max_runs)
    runs = grid_size(args.file, getattr(args, "only", []), args.max_runs)
    print(f"{args.file}: {runs:,} runs in the grid; checking them", flush=True)


def _local(args: argparse.Namespace) -> None:
    """``koopsweep sweep local``: plan and check the grid, then run the cells (all of them, or those not finished)."""
    from koopsweep.sweeps.launch import local_launch

    launch = local_launch(
        args.file,
        args.overrides,
        args.jobs,
        args.threads,
        args.wandb,
        args.latest_first,
        args.only,
        args.warm,
        args.skip_finished,
    )
    warm = args.warm or args.skip_finished  # a queue of the cells left; a Hydra multirun is the whole product
    if args.skip_finished:
        print(f"{len(launch.finished)} of {len(launch.plan.points)} cells already finished: skipped")
        if not launch.runs:
            print("nothing left to run")
            return
    if warm:
        from koopsweep.sweeps import warm_local

        launch = warm_local.warm(launch, args.jobs)
    _launch(launch, args.dry_run, warm=warm)


def main(argv: Sequence[str]) -> None:
    """Entry point of ``koopsweep sweep``; user errors raise ConfigError (one line, exit 2)."""
    parser = _parser()
    args, rest = parser.parse_known_args(list(argv))  # overrides may come after options: FILE --jobs 2 seed=1
    unknown = [a for a in rest if a.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    _say_size(args)
    if args.verb == "validate":
        _validate(args)
    elif args.verb == "local":
        from koopsweep.sweeps.launch import pinned_conf

        with pinned_conf():  # conf/ as it is now, for the preflight and every cell
            _local(args)
    elif args.verb == "slurm":
        from koopsweep.sweeps.launch import check_slurm_available, slurm_launch

        if not args.dry_run:
            check_slurm_available()
        launch = slurm_launch(
            args.file,
            args.overrides,
            args.partition,
            args.time_min,
            args.gpus,
            args.cpus,
            args.wandb,
            args.latest_first,
            args.only,
        )
        _launch(launch, args.dry_run, show_launcher=True, trunks_first=args.trunks_first)
    elif args.verb == "create":
        from koopsweep.sweeps.launch import create

        made = create(args.file, args.project, args.entity)
        path = f"{made['entity']}/{made['project']}/{made['sweep_id']}"
        print(f"created W&B sweep {path}: {made['runs']} runs, {made['trunks']} trunks")
        print("start one agent per GPU or node (each takes the next grid point until the grid is done):")
        print(f"  {made['agent']}")
        print(f"or one per GPU of a box, each pinned to its GPU: koopsweep agent {path}")
    else:  # pragma: no cover - argparse rejects other verbs
        raise ConfigError(f"unknown verb {args.verb}")
