"""Load and check a W&B sweep file before anything is created, composed or launched.

A sweep file is W&B's own format, so the same file drives `wandb sweep` online and `koopsweep sweep local|slurm`
offline. What W&B would accept but koopsweep cannot run is refused here, in one line: values that `str()` turns into
something Hydra reads differently, a command without `${args_no_hyphens}`, search methods other than grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from koopsweep.errors import ConfigError

KNOWN_KEYS = (
    "method",
    "parameters",
    "command",
    "program",
    "metric",
    "name",
    "description",
    "project",
    "entity",
    "early_terminate",
    "run_cap",
)
METHODS = ("grid", "random", "bayes")
PARAMETER_KEYS = ("value", "values", "distribution", "min", "max", "q", "mu", "sigma", "a", "b", "probabilities")
ARGS_MACRO = "${args_no_hyphens}"
APP = "koopsweep"
# A "single word": what str() prints and Hydra reads back as the same value, unquoted (50it, gmp, cuda:0, 1e-05).
WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+\-/@%]*$")
Value = bool | int | float | str


@dataclass(frozen=True)
class SweepSpec:
    """A checked grid sweep: its parameters (sorted, as W&B orders them) and the koopsweep part of its command."""

    path: Path
    raw: dict[str, Any]
    parameters: dict[str, list[Value]]
    command: list[str]
    fixed: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or self.path.stem)

    @property
    def program(self) -> str | None:
        return self.raw.get("program")

    @property
    def swept(self) -> list[str]:
        """Keys with more than one value, in W&B's (sorted) order."""
        return [k for k, v in self.parameters.items() if len(v) > 1]


def _where(path: Path, what: str) -> str:
    return f"{path}: {what}"


def check_value(path: Path, key: str, value: Any) -> Value:
    """A number, a boolean or a single word: the values W&B's str() and Hydra's parser agree on."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ConfigError(_where(path, f"parameter {key}: NaN cannot be passed on a command line"))
        return value
    if isinstance(value, str) and WORD.match(value):
        return value
    if value is None:
        hint = "leave the key out of the sweep to keep the config's null (e.g. schedule.prune_at null = end)"
        raise ConfigError(_where(path, f"parameter {key}: null is passed as the string 'None': {hint}"))
    raise ConfigError(
        _where(
            path,
            f"parameter {key}: {value!r} is not a number, boolean or single word "
            "(W&B formats values with str(): lists, dicts and spaces do not survive the command line)",
        )
    )


def _parameter(path: Path, key: str, entry: Any, method: str) -> list[Value]:
    if not isinstance(entry, dict):
        raise ConfigError(_where(path, f"parameter {key} must be a mapping such as {{values: [1, 2]}}, not {entry!r}"))
    if "parameters" in entry:
        raise ConfigError(
            _where(path, f"parameter {key} is nested: use dotted Hydra keys instead (e.g. pruner.fraction)")
        )
    unknown = sorted(set(entry) - set(PARAMETER_KEYS))
    if unknown:
        raise ConfigError(
            _where(path, f"parameter {key}: unknown field '{unknown[0]}' (W&B knows {', '.join(PARAMETER_KEYS)})")
        )
    if method == "grid" and set(entry) - {"value", "values"}:
        extra = sorted(set(entry) - {"value", "values"})[0]
        raise ConfigError(
            _where(path, f"parameter {key}: '{extra}' is not allowed in a grid sweep: give value or values")
        )
    if ("value" in entry) == ("values" in entry):
        raise ConfigError(_where(path, f"parameter {key}: give exactly one of value or values"))
    if "value" in entry:
        return [check_value(path, key, entry["value"])]
    values = entry["values"]
    if not isinstance(values, list) or not values:
        raise ConfigError(_where(path, f"parameter {key}: values must be a non-empty list"))
    return [check_value(path, key, v) for v in values]


def program_index(command: list[str], program: str | None) -> int | None:
    """Index of the entry that starts koopsweep (``koopsweep``, ``.../koopsweep``, ``-m koopsweep``, ``${program}``)."""
    for i, token in enumerate(command):
        if Path(program if token == "${program}" and program else token).name == APP:
            return i
    return None


def _command(path: Path, raw: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(command, fixed overrides): the overrides are the literal entries after the program."""
    command = raw.get("command")
    example = '["${env}", "koopsweep", "${args_no_hyphens}"]'
    if command is None:
        raise ConfigError(
            _where(path, f"no command: W&B's default passes --key=value, which Hydra rejects; add command: {example}")
        )
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise ConfigError(_where(path, f"command must be a list of strings such as {example}"))
    if "${args}" in command or "${args_no_boolean_flags}" in command:
        raise ConfigError(
            _where(path, "command passes --key=value (${args}); Hydra wants key=value: use ${args_no_hyphens}")
        )
    if command.count(ARGS_MACRO) != 1:
        raise ConfigError(_where(path, f"command must contain {ARGS_MACRO} exactly once, e.g. {example}"))
    start = program_index(command, raw.get("program"))
    if start is None or command.index(ARGS_MACRO) < start:
        raise ConfigError(_where(path, f"command must run koopsweep before {ARGS_MACRO}, e.g. {example}"))
    fixed: list[str] = []
    for token in command[start + 1 :]:
        if token == ARGS_MACRO:
            continue
        if token.startswith("${"):
            raise ConfigError(_where(path, f"command entry {token} after the program is not supported"))
        if token.startswith("-") or "=" not in token:
            raise ConfigError(
                _where(
                    path,
                    f"command entry {token!r} is not a Hydra override key=value (no flags such as -m)",
                )
            )
        fixed.append(token)
    return list(command), fixed


def parse_spec(raw: Any, path: Path) -> SweepSpec:
    """Check a sweep mapping (as loaded from YAML); raise ConfigError with one line for the first problem."""
    if not isinstance(raw, dict):
        raise ConfigError(_where(path, "a sweep file is a YAML mapping with method, parameters and command"))
    unknown = sorted(set(raw) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(_where(path, f"unknown sweep key '{unknown[0]}': valid keys are {', '.join(KNOWN_KEYS)}"))
    method = raw.get("method")
    if method not in METHODS:
        raise ConfigError(_where(path, f"method={method!r}: W&B knows {', '.join(METHODS)}; koopsweep sweeps use grid"))
    if method != "grid":
        raise ConfigError(
            _where(path, f"method={method}: koopsweep runs grid sweeps only (a grid is reproducible offline)")
        )
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ConfigError(_where(path, "parameters must be a non-empty mapping of Hydra keys to {values: [...]}"))
    parameters: dict[str, list[Value]] = {}
    for key in sorted(params):  # W&B sorts parameter names (sweeps.params.HyperParameterSet.from_config)
        if not isinstance(key, str) or not key:
            raise ConfigError(_where(path, f"parameter name {key!r} must be a non-empty string"))
        if key.startswith(("-", "+", "~")) or "=" in key:
            raise ConfigError(_where(path, f"parameter name {key!r} must be a plain Hydra key such as pruner.fraction"))
        parameters[key] = _parameter(path, key, params[key], method)
    command, fixed = _command(path, raw)
    fixed_keys = {o.split("=", 1)[0].lstrip("+~") for o in fixed}
    clash = sorted(fixed_keys & set(parameters))
    if clash:
        raise ConfigError(_where(path, f"'{clash[0]}' is both fixed in command and a parameter: keep one"))
    return SweepSpec(path, dict(raw), parameters, command, fixed)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file, given by path or by the name of a shipped sweep (koopsweep.sweeps.files)."""
    from koopsweep.sweeps.files import resolve_sweep

    path = resolve_sweep(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(_where(path, f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}")) from None
    return parse_spec(raw, path)
