"""A checked sweep ready to launch: every point composed, trunks counted, the Hydra multirun that equals the grid.

Every launch path (validate, local, slurm, create) goes through `plan_sweep`, so nothing reaches Hydra, SLURM or
the W&B server that has not composed into a valid config at every point, and the multirun handed to Hydra is
proven to launch exactly the W&B grid (same points, no more, no fewer) before it starts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.errors import OverrideParseException

from koopsweep.config.compose import expand_overrides, overrides_parser
from koopsweep.config.grid_size import run_cap
from koopsweep.errors import ConfigError
from koopsweep.sweeps.grid import PRUNE_AT, hydra_overrides, order_keys, parsed_point, value_hash
from koopsweep.sweeps.grid_check import check_grid, count_points
from koopsweep.sweeps.points import Point, compose_points, trunk_keys, window_values
from koopsweep.sweeps.spec import SweepSpec, Value, load_spec


@dataclass
class SweepPlan:
    """A sweep file's points (W&B order), the keys that change the trunk, and the launch order for Hydra."""

    spec: SweepSpec
    points: list[Point]
    trunk_keys: list[str]
    ordered: list[tuple[str, list[Value]]]
    extra: list[str] = field(default_factory=list)
    latest_first: bool = False

    @property
    def trunks(self) -> list[str]:
        """Distinct trunk ids, in order of first use."""
        return list(dict.fromkeys(p.trunk for p in self.points))

    def overrides(self) -> list[str]:
        """The multirun's overrides: the command's fixed ones, one comma sweep per parameter, then the extras."""
        return [*self.spec.fixed, *hydra_overrides(self.ordered), *self.extra]

    def trunk_overrides(self) -> list[str]:
        """A multirun of the first job of every trunk only: trunk keys swept, every other key at its first value.

        These are exactly the first len(trunks) jobs of the launch order. Run alone first on a cluster, they train
        every trunk in parallel, so the full grid afterwards never holds an allocation while waiting on a trunk lock.
        """
        first = [(k, v if k in self.trunk_keys else v[:1]) for k, v in self.ordered]
        return [*self.spec.fixed, *hydra_overrides(first), *self.extra]

    def jobs(self) -> list[list[str]]:
        """The job list Hydra's basic sweeper will launch, in launch order."""
        return expand_overrides(self.overrides(), multirun=True)

    def launch_order(self) -> list[Point]:
        """The points in the order Hydra launches them; raises ConfigError unless they are exactly the W&B grid."""
        keys = [parsed_point(p.argv) for p in self.points]
        by_key = dict(zip(keys, self.points, strict=True))
        jobs = [parsed_point(job) for job in self.jobs()]
        if Counter(jobs) != Counter(keys):
            missing = len(set(keys) - set(jobs))
            raise ConfigError(
                f"{self.spec.path}: Hydra's multirun ({len(jobs)} jobs) is not the W&B grid "
                f"({len(self.points)} runs, {missing} missing): report this as a koopsweep bug"
            )
        return [by_key[job] for job in jobs]

    def table(self) -> str:
        """Runs, trunks, and one line per parameter: what `koopsweep sweep validate` prints."""
        runs, trunks = len(self.points), len(self.trunks)
        lines = [
            f"{self.spec.path}: {runs} runs, {trunks} trunk{'s' if trunks != 1 else ''}"
            f" ({runs // max(trunks, 1)} runs per trunk), method grid",
            f"  {'parameter':<22}{'n':>3}  {'trunk':<6}values",
        ]
        for key, values in self.spec.parameters.items():
            shown = " ".join(str(v) for v in values)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            mark = "yes" if key in self.trunk_keys else "-"
            lines.append(f"  {key:<22}{len(values):>3}  {mark:<6}{shown}")
        if self.spec.fixed:
            lines.append(f"  fixed: {' '.join(self.spec.fixed)}")
        order = " > ".join(
            k + (" (latest first)" if self.latest_first else " (earliest first)") * (k == PRUNE_AT)
            for k, v in self.ordered
            if len(v) > 1
        )
        lines.append(f"  launch order (slowest first; trunks first): {order or 'one run'}")
        return "\n".join(lines)


def check_extra(spec: SweepSpec, extra: Sequence[str]) -> list[str]:
    """Extra command-line overrides: single values only, and never a key the sweep varies."""
    out = []
    for override in extra:
        if override.startswith("-") or "=" not in override:
            raise ConfigError(f"extra argument {override!r} is not a Hydra override key=value")
        try:
            parsed = overrides_parser().parse_override(override)
        except OverrideParseException as exc:
            raise ConfigError(f"cannot parse override {override!r}: {str(exc).splitlines()[0]}") from None
        if parsed.is_sweep_override():
            raise ConfigError(f"extra override {override!r} sweeps several values: put swept values in {spec.path}")
        key = parsed.key_or_group
        if key in spec.parameters:
            raise ConfigError(
                f"extra override {override!r} sets '{key}', which {spec.path} sweeps: edit the file instead"
            )
        out.append(override)
    return out


def plan_sweep(
    path: str | Path,
    extra: Sequence[str] = (),
    exact: bool = False,
    latest_first: bool = False,
    only: Sequence[str] = (),
    max_runs: int | None = None,
) -> SweepPlan:
    """Load, check and compose a sweep file; the extras are added to every run (e.g. device=cuda, threads=2).

    ``only`` restricts swept keys to some of their values (``seed=0,1``): a slice of the grid, e.g. for a
    machine that runs two of three seeds. Above ``max_runs`` (default ``MAX_RUNS``, or ``$KOOPSWEEP_MAX_RUNS``)
    runs the grid is refused before anything is composed.
    """
    spec = restrict(load_spec(path), list(only))
    extra = check_extra(spec, extra)
    check_size(spec, max_runs)
    points = compose_points(spec, extra, exact=True) if exact else check_grid(spec, extra)
    keys = trunk_keys(points)
    ordered = order_keys(spec.parameters, keys, latest_first, first=window_values(points))
    plan = SweepPlan(spec, points, keys, ordered, list(extra), latest_first)
    plan.launch_order()
    return plan


def check_size(spec: SweepSpec, max_runs: int | None = None) -> int:
    """The number of runs in the grid (counted, not expanded); ConfigError above the cap."""
    runs = count_points(spec.parameters)
    cap = run_cap(max_runs)
    if runs > cap:
        raise ConfigError(
            f"{spec.path}: {runs:,} runs exceed the cap of {cap:,}: slice the grid (--only KEY=V1,V2), or raise the "
            f"cap with --max-runs {runs} (or KOOPSWEEP_MAX_RUNS={runs})"
        )
    return runs


def grid_size(path: str | Path, only: Sequence[str] = (), max_runs: int | None = None) -> int:
    """How many runs a sweep file (sliced by ``only``) has; what a sweep command says before it checks them."""
    return check_size(restrict(load_spec(path), list(only)), max_runs)


def restrict(spec: SweepSpec, only: list[str]) -> SweepSpec:
    """The same sweep on a slice of its grid: ``["seed=0,1"]`` keeps two of the file's seeds (still a full product).

    Each value must be one the file lists, so a slice never runs a point the whole sweep would not run.
    """
    parameters = dict(spec.parameters)
    for item in only:
        key, sep, text = item.partition("=")
        if not sep or key not in parameters:
            swept = ", ".join(parameters)
            raise ConfigError(f"{spec.path}: --only {item!r}: give KEY=V1,V2 for a swept key ({swept})")
        listed = {value_hash(v): v for v in parameters[key]}
        chosen = []
        for word in text.split(","):
            value = yaml.safe_load(word) if word else word
            if value_hash(value) not in listed:
                shown = " ".join(str(v) for v in parameters[key])
                raise ConfigError(f"{spec.path}: --only {item!r}: {word!r} is not a value of {key} ({shown})")
            chosen.append(listed[value_hash(value)])
        parameters[key] = list(dict.fromkeys(chosen))
    return SweepSpec(spec.path, spec.raw, parameters, spec.command, spec.fixed)
