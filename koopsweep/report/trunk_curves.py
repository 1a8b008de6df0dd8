"""Dense training curves read from the trunk store: how a schedule trained, with no W&B server and no run folder.

Every trunk keeps one checksummed record per evaluation (``curves.jsonl``: iteration, epoch, learning rate, train
loss, test accuracy and loss). ``koopsweep store curve`` prints them as a table, writes them as CSV and draws them,
so two recipes (40 against 80 epochs, two seeds) are compared from the store alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.ticker import FuncFormatter

from koopsweep.report import style, tables
from koopsweep.report.plot import panel_grid, save
from koopsweep.store.ids import spec_field
from koopsweep.store.trunk import Trunk

COLUMNS = ("iteration", "epoch", "lr", "train_loss", "test_acc", "test_loss")
_SOURCE = {"epoch": "train/epoch", "lr": "train/lr", "train_loss": "train/loss", "test_acc": "eval/test_acc",
           "test_loss": "eval/test_loss"}  # fmt: skip


@dataclass(frozen=True)
class TrunkCurve:
    """One trunk's stored dense curve, with the label its spec gives it."""

    trunk_id: str
    label: str
    rows: list[dict[str, float | int | None]]


def _spec_label(spec: dict[str, Any]) -> str:
    model = spec_field(spec, "model", "_target_")
    pretrained = " (pretrained)" if spec_field(spec, "model", "pretrained") != "?" else ""
    schedule = " ".join(
        v for v in (spec_field(spec, "schedule", "train"), spec_field(spec, "schedule", "lr_schedule")) if v != "?"
    )
    return f"{model}{pretrained} seed {spec.get('seed', '?')}" + (f", {schedule}" if schedule else "")


def read_curve(trunk: Trunk) -> TrunkCurve:
    """The trunk's curve, one row per stored evaluation (a field the record lacks is None)."""
    spec, _ = trunk.read_spec()
    rows = []
    for record in trunk.curve(until=sys.maxsize):
        row: dict[str, float | int | None] = {"iteration": record["iteration"]}
        row.update({column: record.get(key) for column, key in _SOURCE.items()})
        rows.append(row)
    return TrunkCurve(trunk.id, _spec_label(spec), rows)


def _cell(value: float | int | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(curve: TrunkCurve) -> str:
    """A plain-text table: epoch, iteration, learning rate, train loss, test accuracy (%) and loss."""
    header = f"{'epoch':>7} {'iteration':>9} {'lr':>9} {'train loss':>10} {'test acc %':>10} {'test loss':>9}"
    lines = [f"trunk {curve.trunk_id}: {curve.label}", header]
    for row in curve.rows:
        acc = row["test_acc"]
        lines.append(
            f"{_cell(row['epoch'], 2):>7} {row['iteration']:>9} {_cell(row['lr'], 5):>9} "
            f"{_cell(row['train_loss'], 4):>10} {_cell(None if acc is None else 100 * acc, 2):>10} "
            f"{_cell(row['test_loss'], 4):>9}"
        )
    return "\n".join(lines)


def write_csv(curves: Sequence[TrunkCurve], path: Path) -> Path:
    """All curves in one long CSV: trunk, label, then COLUMNS."""
    rows = [{"trunk": c.trunk_id, "label": c.label, **row} for c in curves for row in c.rows]
    return tables.write_csv(rows, ("trunk", "label", *COLUMNS), path)


def plot(curves: Sequence[TrunkCurve], path: Path) -> Path:
    """Test accuracy, train loss and learning rate against epochs, one line per trunk."""
    with matplotlib.rc_context(style.RC):
        fig, axes = panel_grid(1, 3, "Dense training curves from the trunk store")
        acc_ax, loss_ax, lr_ax = axes[0]
        for curve in curves:
            label = f"{curve.label} [{curve.trunk_id[:8]}]"
            for ax, column, scale in ((acc_ax, "test_acc", 100.0), (loss_ax, "train_loss", 1.0), (lr_ax, "lr", 1.0)):
                points = [(r["epoch"], r[column]) for r in curve.rows if None not in (r["epoch"], r[column])]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, [scale * y for y in ys], label=label)  # type: ignore[operator]
        acc_ax.set(title="test accuracy", xlabel="epoch", ylabel="test accuracy (%)")
        loss_ax.set(title="train loss", xlabel="epoch", ylabel="train loss")
        if loss_ax.get_lines() and all(min(line.get_ydata()) > 0 for line in loss_ax.get_lines()):
            loss_ax.set_yscale("log")
            for axis in (loss_ax.yaxis.set_major_formatter, loss_ax.yaxis.set_minor_formatter):
                axis(FuncFormatter(lambda v, _: f"{v:g}"))
        lr_ax.set(title="learning rate", xlabel="epoch", ylabel="learning rate")
        return save(fig, path)
