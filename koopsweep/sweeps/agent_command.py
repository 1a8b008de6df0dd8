"""The command line a W&B agent runs for one grid point, built as wandb's own agent builds it.

Why not just f"{key}={value}": the agent's formatting (str() of the value, `/usr/bin/env` for ${env}, ${envvar:X}
substitution, the order of the arguments) is what the app really receives, and it is what the tests feed to
`koopsweep.cli.preflight` to prove each point is accepted. The code below mirrors wandb 0.31's
`wandb_agent.Agent._command_run` and `sdk/launch/sweeps/utils.py` line for line; ``use_wandb=True`` calls wandb's own
macros instead, which is how the tests hold the two equal for every point of every shipped sweep. Ours is the
default because importing `wandb.sdk.launch` costs every `koopsweep sweep` command and warm worker 1–2 s.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from typing import Any

from koopsweep.sweeps.spec import SweepSpec, Value, program_index

_ENVVAR = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")


def _fill_envvars(command: list[str]) -> list[str]:
    """wandb's create_sweep_command: replace ${envvar:NAME} by the variable's value (or NAME when unset)."""
    out = []
    for chunk in command:
        for match in list(_ENVVAR.finditer(chunk))[::-1]:
            chunk = f"{chunk[: match.start()]}{os.environ.get(match.group(1), match.group(1))}{chunk[match.end() :]}"
        out.append(chunk)
    return out


def _args_no_hyphens(args: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """wandb's create_sweep_command_args(...)["args_no_hyphens"]."""
    return [f"{param}={config['value']}" for param, config in args.items()]


def _wandb_macros() -> tuple[Any, Any] | None:
    try:
        from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args
    except Exception:
        return None
    return create_sweep_command, create_sweep_command_args


def expand(command: list[str], program: str | None, point: Mapping[str, Value], use_wandb: bool = False) -> list[str]:
    """Expand the macros of ``command`` for ``point`` (a run config as the sweep server sends it) as the agent does."""
    args = {key: {"value": value} for key, value in point.items()}
    macros = _wandb_macros() if use_wandb else None
    if macros is not None:
        create_sweep_command, create_sweep_command_args = macros
        sweep_command = create_sweep_command(list(command))
        sweep_vars: dict[str, Any] = create_sweep_command_args({"args": args})
    else:
        sweep_command = _fill_envvars(list(command))
        sweep_vars = {"args_no_hyphens": _args_no_hyphens(args)}
    sweep_vars["interpreter"] = ["python"]
    sweep_vars["program"] = [program]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for chunk in sweep_command:
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += sweep_vars.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv


def agent_command(spec: SweepSpec, point: Mapping[str, Value], use_wandb: bool = False) -> list[str]:
    """The full argv a W&B agent starts for ``point``, e.g. ['/usr/bin/env', 'koopsweep', 'experiment=x', 'seed=0']."""
    return expand(spec.command, spec.program, point, use_wandb)


def app_argv(spec: SweepSpec, point: Mapping[str, Value], use_wandb: bool = False) -> list[str]:
    """What koopsweep's main() receives: the agent's command after the program (macros expand entry by entry)."""
    start = program_index(spec.command, spec.program)
    assert start is not None, "parse_spec guarantees a program entry"
    return expand(spec.command[start + 1 :], spec.program, point, use_wandb)
