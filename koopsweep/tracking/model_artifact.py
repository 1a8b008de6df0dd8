"""The W&B model artifact of a finished run: its name, the aliases a user searches by, and its metadata.

One artifact collection per dense trunk (``<model>-<dataset>-seed<seed>-<trunk id>``): every method, amount and
pruning time branched from one dense run logs a version into it, each findable by the alias
``<method>-<compression>x-t<step>`` (``kmp-16x-t9380``); W&B moves an alias to the newest version, so a re-run cell
points at its latest model. The files are the run folder's own (model.pt, masks.pt, their checksums, results.json),
so a downloaded artifact is a run folder that ``koopsweep export`` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ARTIFACT_TYPE = "model"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")  # W&B artifact names and aliases: letters, digits, - _ .

METADATA_METRICS = (
    "mask/sparsity",
    "mask/compression",
    "params/total",
    "params/nonzero",
    "dense/test_acc",
    "pruned/test_acc",
    "final/test_acc",
    "final/test_loss",
    "overlap/gmp",
    "overlap/ggp",
)


@dataclass(frozen=True)
class ModelArtifact:
    """What `Tracker.log_artifact` needs besides the files."""

    name: str
    aliases: tuple[str, ...]
    metadata: dict[str, Any]


def _clean(text: str) -> str:
    return _NOT_ALLOWED.sub("-", text).strip("-") or "x"


def compression_label(results: dict[str, Any]) -> str:
    """``16`` for a run that targeted 16x; the achieved compression to 3 digits (``4.9``) for a fraction run."""
    target = results.get("compression_target")
    value = target if target is not None else results.get("metrics", {}).get("mask/compression", 1.0)
    return f"{value:g}" if target is not None else f"{value:.3g}"


def model_artifact(results: dict[str, Any]) -> ModelArtifact:
    """Name, aliases and metadata of a finished run's model artifact, from its results.json record."""
    cfg = results.get("config", {})
    model, dataset = cfg.get("model", {}).get("name", "model"), cfg.get("dataset", {}).get("name", "data")
    method, step = results["pruner"], results["iterations"]["prune_at"]
    metrics = results.get("metrics", {})
    metadata = {
        "method": method,
        "fraction": results.get("fraction"),
        "compression_target": results.get("compression_target"),
        "prune_at": step,
        "prune_epoch": metrics.get("run/prune_epoch"),
        "prune_step": cfg.get("schedule", {}).get("prune_at") or "end",
        "model": model,
        "dataset": dataset,
        "seed": cfg.get("seed"),
        "experiment": cfg.get("experiment_name"),
        "trunk_id": results.get("trunk_id"),
        "branch_id": results.get("branch_id"),
        "format": "model.pt: final state_dict (removed weights 0); masks.pt: bool keep-mask per parameter name",
        **{key: metrics[key] for key in METADATA_METRICS if key in metrics},
    }
    name = _clean(f"{model}-{dataset}-seed{cfg.get('seed')}-{results.get('trunk_id')}")
    alias = _clean(f"{method}-{compression_label(results)}x-t{step}")
    return ModelArtifact(name, (alias,), metadata)
