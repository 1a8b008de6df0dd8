"""results.json: the record of one run (built here, and only here), and the table a finished run prints.

The record holds the run's status, what was pruned and how much, its trunk and branch ids, the schedule in
iterations, every metric (the same names as the W&B summary, see docs/logging.md), the per-layer sparsity, the
Koopman fit's summary, the resolved config, package versions and the device; a run that failed on the way also
holds ``error``, the one line it ended with (koopsweep.train.run). koopsweep.report.collect reads it.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata
from typing import Any


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's numbers (looked up once per process)."""
    versions = {"python": platform.python_version()}
    for name in ("koopsweep", "torch", "torchvision", "numpy", "hydra-core", "omegaconf", "wandb"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def results_record(
    *,
    status: str,
    pruner: str,
    fraction: float,
    compression_target: float | None,
    trunk_id: str,
    branch_id: str,
    iterations: dict[str, int],
    metrics: dict[str, Any],
    layer_sparsity: dict[str, float],
    koopman: dict[str, Any] | None,
    config: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """The results.json of one run, every field named (koopsweep.report.collect reads these)."""
    return {
        "status": status,
        "pruner": pruner,
        "fraction": fraction,
        "compression_target": compression_target,
        "trunk_id": trunk_id,
        "branch_id": branch_id,
        "iterations": iterations,
        "metrics": metrics,
        "layer_sparsity": layer_sparsity,
        "koopman": koopman,
        "config": config,
        "versions": dict(package_versions()),
        "device": device,
    }


def summary_table(results: dict[str, Any]) -> str:
    """A short human-readable table of a finished run."""
    m = results.get("metrics", {})
    rows = [("stage", "test acc", "test loss")]
    for stage in ("dense", "pruned", "final"):
        if f"{stage}/test_acc" in m:
            rows.append((stage, f"{100 * m[f'{stage}/test_acc']:.2f} %", f"{m[f'{stage}/test_loss']:.4f}"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, width)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    extra = [
        f"status {results.get('status')}",
        f"pruner {results.get('pruner')} removed {100 * m.get('mask/sparsity', 0):.1f} % of prunable weights",
        f"compression {m.get('mask/compression', 1):.2f}x",
    ]
    for key in ("overlap/gmp", "overlap/ggp"):
        if key in m:
            extra.append(f"{key} {m[key]:.4f}")
    if "time/total_s" in m:
        extra.append(f"{m['time/total_s']:.1f} s")
    return "\n".join(lines + ["  ".join(extra)])
