"""How the report names what it groups by: groups, amounts removed, pruning times (the same words everywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koopsweep.report.collect import Row, number
from koopsweep.report.stats import group

TIME_AXIS = "pruning time (log scale)"


def group_title(keys: Sequence[str], key: Sequence[Any]) -> str:
    """'converged_mnistnet / mnistnet / mnist' for the default keys; other keys as key=value."""
    parts = [str(v) if k in ("model", "dataset", "experiment") else f"{k}={v}" for k, v in zip(keys, key)]
    return " / ".join(parts) or "all runs"


def level(row: Row) -> float | None:
    """How much a run removed, as it was asked: the compression target, else the fraction."""
    return number(row.get("compression_target")) or number(row.get("fraction"))


def level_label(row: Row) -> str:
    """'64×' for a compression target, 'f = 0.9' for a fraction."""
    target = number(row.get("compression_target"))
    if target is not None:
        return f"{target:g}×"
    return f"f = {number(row.get('fraction')) or 0:.4g}"


def step_label(row: Row) -> str:
    """A pruning time as configured ('50it', '2ep'), 'end (20ep)' for the end of training."""
    step, epoch = row.get("prune_step"), number(row.get("prune_epoch"))
    if step == "end":
        return f"end ({epoch:g}ep)" if epoch is not None else "end"
    return str(step) if step else (f"{epoch:.3g}ep" if epoch is not None else "?")


def time_label(rows: Sequence[Row]) -> str:
    """When the runs were pruned, as configured and in epochs."""
    epoch, steps = rows[0]["prune_epoch"], {r["prune_step"] for r in rows}
    when = "?" if epoch is None else f"{epoch:.3g} ep"
    if steps == {"end"}:
        return f"pruned at end of training ({when})"
    step = steps.pop() if len(steps) == 1 else None
    return f"pruned at {step} ({when})" if step and not step.endswith("ep") else f"pruned at {when}"


def time_ticks(rows: Sequence[Row]) -> list[tuple[float, str]]:
    """(epoch, label) for each pruning time run: the configured step ('50it', '2ep'), 'end' shown with its epoch."""
    ticks = []
    for (epoch,), runs in group([r for r in rows if number(r["prune_epoch"])], ["prune_epoch"]).items():
        labels = {step_label(r) for r in runs}
        ticks.append((float(epoch), labels.pop() if len(labels) == 1 else f"{epoch:.3g}ep"))
    return ticks
