"""Who a run is on W&B: its name, group, job type, tags, display config and run id, from the run's config.

One W&B run per grid cell, grouped by experiment, tagged with method, model, dataset and trunk. The run id is the
branch id and the rest of the config (koopsweep.store.ids.wandb_run_id): a preempted or re-issued cell resumes its
own run, and two experiments or groups never share one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig


@dataclass(frozen=True)
class RunIdentity:
    """What W&B shows a run as; every field a `wandb.init` argument of the same name (config: `display_config`)."""

    name: str
    group: str
    job_type: str
    tags: list[str] = field(default_factory=list)
    run_id: str | None = None
    display_config: dict[str, Any] = field(default_factory=dict)


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys (`optimizer.lr`), the names sweeps and dashboard filters use."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def run_identity(cfg: DictConfig, resolved: dict[str, Any], trunk: str, branch: str) -> RunIdentity:
    """The identity of the run ``cfg`` describes, on trunk ``trunk`` as branch ``branch``."""
    from koopsweep.store.ids import wandb_run_id

    pruner = cfg.pruner
    amount = f"c{pruner.compression:g}" if pruner.compression is not None else f"f{pruner.fraction or 0:g}"
    return RunIdentity(
        name=f"{pruner.name}-{amount}-t{cfg.schedule.prune_at or 'end'}-s{cfg.seed}",
        group=cfg.logger.group or cfg.experiment_name,
        job_type=cfg.logger.job_type or ("dense" if pruner._target_ is None else "prune"),
        tags=[pruner.name, cfg.model.name, cfg.dataset.name, f"trunk-{trunk}", *cfg.logger.tags],
        run_id=wandb_run_id(resolved, branch),
        display_config={**flatten_config(resolved), "trunk_id": trunk, "branch_id": branch},  # group by either
    )
