"""Numbers that cannot work in the run's precision: refused before anything is loaded, in one line.

Why a check of its own: a learning rate of 1e39 passes every range check (it is positive) and then fails inside
PyTorch's optimizer step with a 30-line traceback, after the data were loaded and the trunk created, because
float32 cannot hold it. NaN and infinity slip through ``v > 0`` style checks the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from koopsweep.errors import ConfigError

# The largest and the smallest positive value of each precision (the smallest subnormal: below it a value is 0).
LIMITS = {"fp32": (3.4028234663852886e38, 1.401298464324817e-45), "fp64": (1.7976931348623157e308, 5e-324)}
# Values that become tensor scalars of the run's precision in the optimizer step.
SCALARS = ("optimizer.lr", "optimizer.momentum", "optimizer.weight_decay", "schedule.finetune_lr")


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{prefix[:-1]}[{index}].")
    else:
        yield prefix[:-1], node


def check_numbers(cfg: DictConfig) -> None:
    """Raise ConfigError for a NaN or infinite number anywhere in the run's config, and for an optimizer value
    (learning rate, momentum, weight decay, Adam's betas and eps) that overflows or underflows to 0 in
    ``precision``, counting the largest learning rate the schedule reaches."""
    # Unresolved: an interpolation is checked where its value is written (and resolving costs 40 ms a config).
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    for key, value in _leaves({k: v for k, v in raw.items() if k != "hydra"}):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not a finite number")
    largest, smallest = LIMITS.get(str(cfg.precision), LIMITS["fp32"])
    values = {key: OmegaConf.select(cfg, key) for key in SCALARS}
    for name in ("betas", "eps"):
        value = cfg.optimizer.get(name)
        if value is not None:
            values[f"optimizer.{name}"] = list(value) if OmegaConf.is_config(value) else value
    gamma = float(cfg.schedule.gamma)
    steps = len(cfg.schedule.milestones) if cfg.schedule.lr_schedule == "step" else 0
    try:
        peak = max(1.0, gamma**steps) if gamma > 0 else 1.0
    except OverflowError:
        peak = math.inf
    for key, value in values.items():
        for number in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number == 0:
                continue
            reach = abs(number) * (peak if key.endswith("lr") else 1.0)
            if reach > largest:
                grows = f", {reach:.3g} at the schedule's last step" if reach != abs(number) else ""
                raise ConfigError(
                    f"{key}={number:g} overflows {cfg.precision} (largest {largest:.3g}{grows}): choose a "
                    "value that a training step can hold"
                )
            if abs(number) < smallest:
                raise ConfigError(
                    f"{key}={number:g} is 0 in {cfg.precision} (smallest {smallest:.3g}): use 0 or at least that"
                )
