"""``koopsweep dashboard SWEEP``: the experiment's W&B workspace, as code (see koopsweep.tracking.sweep_workspace).

Without a server it prints the workspace (default) or writes its definition (``--json PATH``); ``--save`` uploads
it as a saved view of the project. Needs wandb-workspaces: pip install "koopsweep[dashboards]".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koopsweep.errors import ConfigError, KoopsweepError

EPILOG = """examples:
  koopsweep dashboard timing_kmp                              # print sections, panels and their queries
  koopsweep dashboard sweeps/converged_mnistnet.yaml --json dash.json   # the saved view's definition
  koopsweep dashboard timing_kgp --entity my-team --project koopsweep --save
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koopsweep dashboard",
        description="Build the W&B workspace of a sweep's runs: the paper's figures as panels, runs grouped by trunk.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep", help="a sweep file, or the name of a shipped sweep (e.g. timing_kmp)")
    parser.add_argument("--entity", default=None, help="W&B entity (default: the sweep's, logger.entity, your own)")
    parser.add_argument("--project", default=None, help="W&B project (default: the sweep's, else logger.project)")
    parser.add_argument("--name", default=None, help="workspace name (default: the sweep's name)")
    parser.add_argument(
        "--group-runs-by",
        choices=("trunk", "method", "none"),
        default="trunk",
        help="grouping of the runs table, also used by panels without their own (default: trunk)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the definition as JSON")
    parser.add_argument("--save", action="store_true", help="save the workspace on the W&B server (needs a login)")
    return parser


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write the definition, one line of error when the folder is missing or not writable."""
    try:
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        raise ConfigError(f"dashboard --json {path}: cannot write ({exc.strerror or exc})") from None


def save(workspace: Any) -> str:
    """Upload the workspace as a saved view; its URL. Refused offline, before wandb tries to reach a server."""
    from koopsweep.sweeps.launch import offline_reason

    reason = offline_reason()
    if reason is not None:
        raise ConfigError(
            f"cannot save a W&B workspace offline ({reason}): write its definition with --json PATH instead"
        )
    import wandb

    try:
        if not workspace.entity:
            workspace.entity = wandb.Api().default_entity
        workspace.save()
        return str(workspace.url)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KoopsweepError(f"W&B did not save the workspace: {first}") from None


def main(argv: Sequence[str]) -> None:
    from koopsweep.sweeps.files import resolve_sweep
    from koopsweep.tracking.sweep_workspace import (
        build_workspace,
        definition,
        require_workspaces,
        summary_text,
        target_from_sweep,
    )

    args = _parser().parse_args(list(argv))
    path = resolve_sweep(args.sweep)
    require_workspaces()  # before composing the sweep: the missing package is the first thing to say
    target = target_from_sweep(path, entity=args.entity, project=args.project)
    workspace = build_workspace(target, name=args.name, group_runs_by=args.group_runs_by)
    if args.json is not None:
        write_json(args.json, definition(workspace))
        print(f"wrote the definition of workspace {workspace.name!r} to {args.json}")
    if args.save:
        print(f"saved workspace {workspace.name!r}: {save(workspace)}")
    if args.json is None and not args.save:
        print(summary_text(workspace, target))
