"""Content ids: a trunk is named by what determines the dense run, a branch by what it adds on top.

Like OpenLTH's hyperparameter hashes, the canonical spec omits every value equal to its schema default, so adding
a new option (at its default) leaves every existing id unchanged. Unlike OpenLTH, pruning settings stay out of the
trunk: every pruner, fraction, pruning time and fine-tuning length shares one dense run.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from koopsweep.config import plain
from koopsweep.config.schema import (
    DatasetConfig,
    KoopmanConfig,
    ModelConfig,
    OptimizerConfig,
    PrunerConfig,
    ScheduleConfig,
)
from koopsweep.data import source_identity
from koopsweep.models.pretrained import pretrained_sha256

SCHEMA_VERSION = 1

# Fields of each group that decide the dense trajectory. Evaluation, pruning and fine-tuning settings do not.
TRUNK_FIELDS: dict[str, tuple[type | None, tuple[str, ...]]] = {
    "model": (ModelConfig, ("_target_", "kwargs")),
    "dataset": (DatasetConfig, ("name", "source", "batch_size", "train_size", "augment")),
    "optimizer": (OptimizerConfig, tuple(f.name for f in fields(OptimizerConfig))),
    "schedule": (ScheduleConfig, ("train", "lr_schedule", "milestones", "gamma", "warmup")),
}
SPECTRUM_FIELDS = ("params", "record", "max_rank")  # what is recorded and fitted, and whether a pruner=none run fits
BRANCH_FIELDS: dict[str, tuple[type | None, tuple[str, ...]]] = {
    "pruner": (PrunerConfig, tuple(f.name for f in fields(PrunerConfig) if f.name not in ("compare",))),
    "schedule": (ScheduleConfig, ("prune_at", "finetune", "finetune_lr")),
    "koopman": (
        KoopmanConfig,
        ("window", "stride", "rank_tol", "delays", "momentum_correction", "cluster_radius", *SPECTRUM_FIELDS),
    ),
}


@functools.cache
def _defaults(schema: type) -> dict[str, Any]:
    """A schema's default values, built once per schema."""
    return OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)  # type: ignore[return-value]


def _default(schema: type | None, name: str) -> Any:
    if schema is None:
        return object()  # no default: always part of the spec
    return _defaults(schema).get(name, object())


# Keys that say how to obtain data, not which data: they never change a trajectory.
IRRELEVANT_SOURCE_KEYS = ("download", "cache_dir")


def _spec(cfg: DictConfig, groups: dict[str, tuple[type | None, tuple[str, ...]]]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for group, (schema, names) in groups.items():
        part = {}
        for name in names:
            value = plain(cfg[group][name])
            if group == "dataset" and name == "source":
                value = {k: v for k, v in value.items() if k not in IRRELEVANT_SOURCE_KEYS}
            if value != _default(schema, name):
                part[name] = value
        spec[group] = part
    return spec


def trunk_spec(cfg: DictConfig) -> dict[str, Any]:
    """What the dense run depends on, without values left at their defaults."""
    spec = _spec(cfg, TRUNK_FIELDS)
    weights = pretrained_sha256(cfg)
    if weights is not None:  # the weights' content, however they were named: never a from-scratch trunk
        spec["model"]["pretrained"] = weights
    data = source_identity(cfg.dataset.source, cfg.paths.data_dir)
    if data is not None:  # e.g. an image-folder copy of CIFAR-10 is not torchvision's original
        spec["data"] = data
    spec["seed"] = cfg.seed
    if cfg.precision != "fp32":
        spec["precision"] = cfg.precision
    spec["schema"] = SCHEMA_VERSION
    return spec


def spec_field(spec: dict[str, Any], group: str, key: str) -> str:
    """``spec[group][key]`` of a trunk spec as text, for people: a value the canonical spec leaves out is its schema
    default (``schedule.train`` 10ep), ``?`` where neither has it; a ``_target_`` by its class name."""
    part = spec.get(group)
    if not isinstance(part, dict):  # a damaged spec: nothing to read, not a default
        return "?"
    value = part.get(key)
    schema, names = TRUNK_FIELDS.get(group, (None, ()))
    if value is None and schema is not None and key in names:
        value = _defaults(schema).get(key)
    if value is None or value == "???":  # "???": a schema field without a default
        return "?"
    return str(value).rsplit(".", 1)[-1] if key == "_target_" else str(value)


def _digest(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trunk_id(cfg: DictConfig, spec: dict[str, Any] | None = None) -> str:
    """16 hex digits naming the dense run of ``cfg`` (from its ``trunk_spec`` when already at hand)."""
    return _digest(spec if spec is not None else trunk_spec(cfg))


def branch_spec(cfg: DictConfig, trunk: str | None = None) -> dict[str, Any]:
    """What a branch adds to its trunk (``trunk_id(cfg)``, given or computed): the pruner, the pruning time,
    fine-tuning and (for Koopman) the fit."""
    spec = _spec(cfg, BRANCH_FIELDS)
    spec["trunk"] = trunk if trunk is not None else trunk_id(cfg)
    return spec


def branch_id(cfg: DictConfig, trunk: str | None = None) -> str:
    """16 hex digits naming one (trunk, pruner, fraction, pruning time, fine-tuning) cell."""
    return _digest(branch_spec(cfg, trunk))


# Where and how a run executes, not which run it is: the same command started from another folder, with more
# threads, a progress bar or logged offline first is the same W&B run.
RUN_ID_IGNORED = ("paths", "threads", "progress", "logger.mode")


def wandb_run_id(resolved: dict[str, Any], branch: str) -> str:
    """16 hex digits naming a W&B run: the branch id plus every other setting that tells runs apart.

    The branch id alone leaves out what does not change the numbers (experiment name, logger group, evaluation
    settings, tags), so two experiments or groups would share one W&B run and be merged on upload. The same command
    still gives the same id, so a rerun resumes its own run.
    """
    return _digest({"branch": branch, "run": run_settings(resolved)})


def run_settings(resolved: dict[str, Any]) -> dict[str, Any]:
    """A JSON copy of a resolved config without the keys that say where and how a run executed
    (RUN_ID_IGNORED): what tells one run from another, for its W&B id and for `sweep local --skip-finished`."""
    identity = json.loads(json.dumps(resolved, default=str))
    for dotted in RUN_ID_IGNORED:
        *parents, leaf = dotted.split(".")
        node = identity
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return identity
