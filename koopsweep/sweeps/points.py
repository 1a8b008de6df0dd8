"""Compose and check every grid point of a sweep, and find which parameters change the trunk.

Composing with Hydra costs 0.1-0.3 s a point, which makes a 288-point sweep slow to validate: points are composed
by koopsweep.config.compose.Composer, once per distinct set of group choices (identical to a full compose, checked
point by point in the tests), and `exact=True` composes every point in full. Either way every point then goes
through `check_config`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from koopsweep.config import plain, setup
from koopsweep.config.compose import Composer, compose_config, hydra_context, shared_composer
from koopsweep.errors import ConfigError
from koopsweep.store import ids
from koopsweep.sweeps.agent_command import app_argv
from koopsweep.sweeps.grid import wandb_grid
from koopsweep.sweeps.spec import SweepSpec, Value


@dataclass(frozen=True)
class Point:
    """One run of the grid: the W&B run config, the argv the agent passes, its trunk id and whether it records the
    Koopman window; its checked config when it was composed in full (``cfg`` composes it otherwise)."""

    values: dict[str, Value]
    argv: list[str]
    trunk: str
    needs_window: bool = False
    composed: DictConfig | None = field(default=None, compare=False, repr=False)
    composer: Composer | None = field(default=None, compare=False, repr=False)

    @property
    def cfg(self) -> DictConfig:
        """The point's checked config: composed on first use when the grid was checked without composing every
        point (koopsweep.sweeps.grid_check), then kept."""
        if self.composed is None:
            with hydra_context():
                cfg = self.composer.compose(self.argv) if self.composer else compose_config(self.argv)
            object.__setattr__(self, "composed", cfg)
        assert self.composed is not None
        return self.composed


class TrunkIds:
    """trunk_id per config, computed once per distinct trunk-relevant part (it costs ~30 ms a call)."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, cfg: DictConfig) -> str:
        part: dict[str, Any] = {
            g: {name: plain(cfg[g][name]) for name in names} for g, (_, names) in ids.TRUNK_FIELDS.items()
        }
        part.update({k: v for k, v in cfg.items() if not OmegaConf.is_config(v)})  # seed, precision, ...
        key = json.dumps(part, sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = ids.trunk_id(cfg)
        return self._cache[key]


def compose_points(spec: SweepSpec, extra: Sequence[str] = (), exact: bool = False) -> list[Point]:
    """Every grid point, in W&B's order, composed and checked; ConfigError names the sweep file and the point."""
    setup()
    composer, trunk_of = shared_composer(exact), TrunkIds()
    points: list[Point] = []
    with hydra_context():
        for values in wandb_grid(spec.parameters):
            argv = app_argv(spec, values) + list(extra)
            try:
                cfg = composer.compose(argv)
            except ConfigError as exc:
                where = " ".join(f"{k}={v}" for k, v in values.items())
                raise ConfigError(f"{spec.path}: run {len(points) + 1} ({where}): {exc}") from None
            points.append(Point(dict(values), argv, trunk_of(cfg), needs_window(cfg), cfg))
    return points


def needs_window(cfg: DictConfig) -> bool:
    """True when the run records the Koopman snapshot window: its pruner reads it (the scorer's
    ``requires_koopman``) or ``koopman.record`` asks for the spectrum."""
    if cfg.koopman.get("record", False):
        return True
    target = cfg.pruner.get("_target_")
    return bool(target) and bool(getattr(get_class(target), "requires_koopman", False))


def window_values(points: Sequence[Point]) -> dict[str, list[Value]]:
    """Per parameter, the values all of whose runs need the Koopman window (launched first at each time)."""
    found: dict[str, list[Value]] = {}
    for key in sorted(points[0].values) if points else []:
        needs: dict[str, tuple[Value, bool]] = {}
        for p in points:
            value = p.values[key]
            previous = needs.get(repr(value), (value, True))[1]
            needs[repr(value)] = (value, previous and p.needs_window)
        found[key] = [value for value, all_need in needs.values() if all_need]
    return found


def trunk_keys(points: Sequence[Point]) -> list[str]:
    """Parameters whose value changes the trunk id, with every other parameter held fixed."""
    keys = sorted(points[0].values) if points else []
    found = []
    for key in keys:
        others: dict[tuple, set[str]] = {}
        for p in points:
            rest = tuple((k, repr(v)) for k, v in p.values.items() if k != key)
            others.setdefault(rest, set()).add(p.trunk)
        if any(len(trunks) > 1 for trunks in others.values()):
            found.append(key)
    return found
