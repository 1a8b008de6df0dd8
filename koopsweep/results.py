"""results.json: everything needed to read a run back without its logs, written atomically."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in ("koopsweep", "torch", "torchvision", "numpy", "hydra-core", "omegaconf", "wandb"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        f"pruner {results.get('pruner')} removed {100 * m.get('sparsity', 0):.1f} % of prunable weights",
        f"compression {m.get('compression', 1):.2f}x",
    ]
    for key in ("overlap/gmp", "overlap/ggp"):
        if key in m:
            extra.append(f"{key} {m[key]:.4f}")
    if "time/total_s" in m:
        extra.append(f"{m['time/total_s']:.1f} s")
    return "\n".join(lines + ["  ".join(extra)])
