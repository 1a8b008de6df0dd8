"""Grid expansion as W&B's sweep engine does it, and the same grid as one Hydra multirun.

W&B's engine (the open-source `sweeps` package, `grid_search_next_runs`) sorts parameter names, walks
`itertools.product` over each parameter's values with the first name slowest, and drops repeats by a YAML hash
of each value in which integral floats count as ints (so 1 and 1.0 are one value, the last one listed wins).
That package pins numpy < 2, so it is reimplemented here and checked against it in the tests when it is importable.

A grid is a full cartesian product, so Hydra's comma syntax (one `key=a,b,c` per key) expresses it exactly; the
order of keys and values only decides the launch order, which `order_keys` chooses "trunks first".
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from koopsweep.config.compose import overrides_parser
from koopsweep.steps import Step
from koopsweep.sweeps.spec import Value

PRUNE_AT = "schedule.prune_at"


def value_hash(value: Any) -> str:
    """W&B's identity of a grid value: md5 of its flow-style YAML, integral floats as ints."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return hashlib.md5(yaml.dump(value, default_flow_style=True, sort_keys=True).encode("ascii")).hexdigest()


def wandb_grid(parameters: dict[str, Sequence[Value]]) -> list[dict[str, Value]]:
    """Every grid point, in the order a W&B grid sweep hands them to agents."""
    names = sorted(parameters)
    hashes = [[value_hash(v) for v in parameters[n]] for n in names]
    lookup = {n: dict(zip(h, parameters[n], strict=True)) for n, h in zip(names, hashes, strict=True)}
    seen: set[tuple[str, ...]] = set()
    points: list[dict[str, Value]] = []
    for combo in itertools.product(*hashes):
        if combo in seen:
            continue
        seen.add(combo)
        points.append({n: lookup[n][h] for n, h in zip(names, combo, strict=True)})
    return points


def distinct_values(values: Sequence[Value]) -> list[Value]:
    """A parameter's values without W&B's repeats, in first-seen order (the value kept is the last one listed)."""
    lookup = {value_hash(v): v for v in values}
    order = dict.fromkeys(value_hash(v) for v in values)
    return [lookup[h] for h in order]


def as_override(key: str, value: Value) -> str:
    """`key=value` exactly as a W&B agent writes it with ${args_no_hyphens}: f"{param}={value}"."""
    return f"{key}={value}"


def step_key(value: Value) -> tuple[int, int]:
    """Sort key of a pruning time: (epochs, iterations), exact when iterations stay below an epoch ("1ep200it")."""
    step = Step.parse(value if isinstance(value, int) and not isinstance(value, bool) else str(value), what=PRUNE_AT)
    return step.epochs, step.iterations


def order_keys(
    parameters: dict[str, Sequence[Value]],
    trunk_keys: Iterable[str],
    latest_first: bool = False,
    first: Mapping[str, Iterable[Value]] | None = None,
) -> list[tuple[str, list[Value]]]:
    """Keys (slowest first) and their values for the multirun, so that trunks are trained once, early and in parallel.

    Pruning time slowest, earliest first: a trunk is trained up to the first pruning time, and every later run of that
    trunk resumes it from the latest stored state instead of training from step 0 again (koopsweep.train.dense).
    Keys that change the trunk (seed, model, ...) fastest: the first job of every trunk comes before the second job of
    any trunk, so parallel workers train different trunks instead of queueing on one trunk's lock. Within a key, the
    values in ``first`` lead (Koopman pruners: the run that trains a trunk to t should also record the snapshot window
    before t, which the other pruners at t do not need). Single-valued keys come first (fixed).
    `latest_first` reverses the pruning times, for a store that checkpoints every requested time in one pass.
    """
    trunk = set(trunk_keys)
    values = {k: distinct_values(v) for k, v in parameters.items()}
    for key, leading in (first or {}).items():
        lead = {value_hash(v) for v in leading}
        values[key] = sorted(values[key], key=lambda v: value_hash(v) not in lead)
    fixed = [k for k in sorted(values) if len(values[k]) == 1]
    swept = [k for k in sorted(values) if len(values[k]) > 1]
    time = [k for k in swept if k == PRUNE_AT]
    if time:
        values[PRUNE_AT] = sorted(values[PRUNE_AT], key=step_key, reverse=latest_first)
    branch = [k for k in swept if k not in trunk and k not in time]
    trunks = [k for k in swept if k in trunk and k not in time]
    return [(k, values[k]) for k in fixed + time + branch + trunks]


def hydra_overrides(ordered: Sequence[tuple[str, Sequence[Value]]]) -> list[str]:
    """One override per key, comma-separated values for swept keys: Hydra's basic sweeper expands the product."""
    return [f"{key}={','.join(str(v) for v in vals)}" for key, vals in ordered]


def parsed_point(overrides: Iterable[str]) -> frozenset[tuple[str, Any]]:
    """A job as a set of (key, value) read with Hydra's own parser, so `0.5` from W&B and from Hydra compare equal.

    A key given twice keeps its last value, as in Hydra's basic sweeper.
    """
    return frozenset(dict(_parsed(override) for override in overrides).items())


@functools.lru_cache(maxsize=1 << 16)
def _parsed(override: str) -> tuple[str, Any]:
    """One override as (key, value), parsed once: a grid repeats each of its few override strings many times."""
    (parsed,) = overrides_parser().parse_overrides([override])
    value = parsed.value()
    return parsed.get_key_element(), repr(value) if isinstance(value, (list, dict)) else value
