"""Check a sweep's grid without composing every point: each value of an axis once, combinations only where checks
read several axes together.

Why: composing and checking a point costs 10-15 ms, so a grid of 1,000 fractions x 1,000 seeds took hours and
gigabytes. But the checks are local: the optimizer's look at the optimizer and the precision, the feasibility check
at the model, data, schedule, Koopman window and pruner, and nothing checks the seed against anything. So:

1. the base point (every axis at its first value) and every value of every axis alone are composed and checked;
   comparing each with the base shows which config leaves an axis changes (its footprint, interpolations resolved);
2. a check unit (below: the config groups a check reads) depends on the axes whose footprint touches its groups;
   a unit that depends on two or more axes is checked at every combination of their values, the other axes at
   their first value. Every combination is itself a grid point, composed and checked in full;
3. a point's trunk id and whether it records the Koopman window are read off the combination of its values on the
   axes they depend on (computed once per combination).

A grid of 1,000 fractions x 10 seeds is then 1,010 checks, not 10,000; 100 fractions x 100 learning rates is 200.
``koopsweep sweep validate --exact`` still composes every point in full, and every job checks its config again
when it starts.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from koopsweep.config.compose import hydra_context, shared_composer
from koopsweep.errors import ConfigError
from koopsweep.progress import progress
from koopsweep.sweeps.agent_command import app_argv
from koopsweep.sweeps.grid import distinct_values, value_hash, wandb_grid
from koopsweep.sweeps.points import Point, TrunkIds, needs_window
from koopsweep.sweeps.spec import SweepSpec, Value

# What each check reads (koopsweep.config.checks and the modules it calls), as config groups or top-level keys.
UNITS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "dataset": ("dataset",),
    "optimizer": ("optimizer", "precision", "schedule"),
    "schedule": ("schedule", "model"),
    "pruner": ("pruner",),
    "koopman": ("koopman",),
    "store": ("store",),
    "logger": ("logger",),
    "runtime": ("precision", "threads", "device"),
    "paths": ("paths",),
    "pretrained": ("model", "paths"),
    "feasible": ("model", "dataset", "schedule", "koopman", "store", "pruner", "paths"),
}
TRUNK_READS = ("model", "dataset", "optimizer", "schedule", "paths", "seed", "precision")
WINDOW_READS = ("pruner", "koopman")
Assignment = dict[str, Value]


def count_points(parameters: Mapping[str, Sequence[Value]]) -> int:
    """How many runs the grid has (W&B counts each distinct value once), without expanding it."""
    return math.prod(len(distinct_values(values)) for values in parameters.values())


def _leaves(cfg: DictConfig) -> dict[str, Any]:
    """Every leaf of ``cfg`` but hydra's, by dotted key, as written (interpolations unresolved: resolving costs
    50 ms a config; ``_dependents`` carries a change on to the leaves that interpolate it)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    found: dict[str, Any] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, f"{key}.{name}" if key else str(name))
        else:
            found[key] = repr(node) if isinstance(node, list) else node

    walk({k: v for k, v in raw.items() if k != "hydra"}, "")
    return found


_REFERENCE = re.compile(r"\$\{(\.*)([A-Za-z_][\w.]*)\}")


def _dependents(leaves: Mapping[str, Any]) -> dict[str, set[str]]:
    """For each leaf, the leaves whose interpolation refers to it (``${model.name}``, relative ``${.compression}``)."""
    found: dict[str, set[str]] = {}
    for key, value in leaves.items():
        if not isinstance(value, str) or "${" not in value:
            continue
        for dots, name in _REFERENCE.findall(value):
            parent = key.split(".")[: -len(dots)] if dots else []
            found.setdefault(".".join([*parent, name]), set()).add(key)
    return found


def _with_dependents(changed: set[str], dependents: Mapping[str, set[str]]) -> set[str]:
    """``changed`` and every leaf that interpolates one of them, transitively (a group's leaves count as one)."""
    result, todo = set(changed), list(changed)
    while todo:
        leaf = todo.pop()
        for source, users in dependents.items():
            if source == leaf or source.startswith(leaf + ".") or leaf.startswith(source + "."):
                for user in users - result:
                    result.add(user)
                    todo.append(user)
    return result


def _touches(footprint: set[str], reads: Iterable[str]) -> bool:
    return any(leaf == r or leaf.startswith(r + ".") for leaf in footprint for r in reads)


_hash = functools.lru_cache(maxsize=1 << 16, typed=True)(value_hash)


class GridChecker:
    """Composes and checks grid points, each assignment of values at most once, keeping only its trunk id and
    whether it records the Koopman window; failures name the sweep file and the W&B run number."""

    def __init__(self, spec: SweepSpec, extra: Sequence[str], axes: dict[str, list[Value]]) -> None:
        self.spec, self.extra, self.axes = spec, list(extra), axes
        self.composer, self.trunk_of = shared_composer(), TrunkIds()
        self.facts: dict[tuple[str, ...], tuple[str, bool]] = {}

    def key(self, values: Assignment) -> tuple[str, ...]:
        return tuple(_hash(values[k]) for k in self.axes)

    def run_number(self, values: Assignment) -> int:
        """The point's position in W&B's order (names sorted, the first slowest), counted from 1."""
        number = 0
        for name in sorted(self.axes):
            hashes = [_hash(v) for v in self.axes[name]]
            number = number * len(hashes) + hashes.index(_hash(values[name]))
        return number + 1

    def check(self, values: Assignment) -> DictConfig | None:
        """Compose and check the point ``values`` unless done before (then None); keeps its trunk id and whether it
        records the window."""
        key = self.key(values)
        if key in self.facts:
            return None
        try:
            cfg = self.composer.compose(app_argv(self.spec, values) + self.extra)
        except ConfigError as exc:
            where = " ".join(f"{k}={v}" for k, v in values.items())
            raise ConfigError(f"{self.spec.path}: run {self.run_number(values)} ({where}): {exc}") from None
        self.facts[key] = (self.trunk_of(cfg), needs_window(cfg))
        return cfg


def _dependent(footprints: Mapping[str, set[str]], reads: Iterable[str]) -> list[str]:
    reads = tuple(reads)
    return [axis for axis, footprint in footprints.items() if _touches(footprint, reads)]


def _combinations(axes: Mapping[str, list[Value]], names: Sequence[str]) -> Iterable[Assignment]:
    for combo in itertools.product(*(axes[n] for n in names)):
        yield dict(zip(names, combo, strict=True))


def check_grid(spec: SweepSpec, extra: Sequence[str] = ()) -> list[Point]:
    """Every point of the grid, in W&B's order, checked as the module docstring says; ConfigError for the first
    point that does not compose or is impossible."""
    axes = {name: distinct_values(values) for name, values in spec.parameters.items()}
    base = {name: values[0] for name, values in axes.items()}
    checker = GridChecker(spec, extra, axes)
    with hydra_context():
        base_cfg = checker.check(base)
        assert base_cfg is not None
        base_leaves = _leaves(base_cfg)
        dependents = _dependents(base_leaves)
        footprints: dict[str, set[str]] = {name: set() for name in axes}
        singles = [(name, value) for name, values in axes.items() for value in values[1:]]
        for name, value in progress(singles, desc="each value", leave=False):
            cfg = checker.check({**base, name: value})
            if cfg is not None:
                leaves = _leaves(cfg)
                changed = {k for k in leaves.keys() | base_leaves.keys() if leaves.get(k) != base_leaves.get(k)}
                footprints[name] |= changed
        footprints = {name: _with_dependents(changed, dependents) for name, changed in footprints.items()}
        joint = {tuple(_dependent(footprints, reads)) for reads in UNITS.values()}
        trunk_axes = _dependent(footprints, TRUNK_READS)
        window_axes = _dependent(footprints, WINDOW_READS)
        todo = [names for names in sorted(joint) if len(names) > 1] + [tuple(trunk_axes), tuple(window_axes)]
        combos = [{**base, **c} for names in todo for c in _combinations(axes, names)]
        for values in progress(combos, desc="combinations", leave=False):
            checker.check(values)
    points = []
    for values in wandb_grid(spec.parameters):
        trunk = checker.facts[checker.key({**base, **{n: values[n] for n in trunk_axes}})][0]
        window = checker.facts[checker.key({**base, **{n: values[n] for n in window_axes}})][1]
        points.append(Point(dict(values), app_argv(spec, values) + list(extra), trunk, window, None, checker.composer))
    return points
