"""Grouping rows and averaging over seeds: the only statistics the report needs (mean, sample std, count)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from koopsweep.report.collect import Row, number

METHOD_ORDER = ("gmp", "kmp", "ggp", "kgp", "lmp", "lgp", "random", "none")


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text before None, methods in the paper's order, so tables and legends read the same."""
    if value is None:
        return (3, "")
    if number(value) is not None:
        return (0, float(value))
    if value in METHOD_ORDER:
        return (1, METHOD_ORDER.index(value))
    return (2, str(value))


def group(rows: Iterable[Row], keys: Sequence[str]) -> dict[tuple[Any, ...], list[Row]]:
    """Rows by their values of ``keys``, groups in sort order."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    return dict(sorted(groups.items(), key=lambda item: tuple(sort_key(v) for v in item[0])))


def one_per(rows: Iterable[Row], column: str) -> list[Row]:
    """The first row for each value of ``column``: e.g. one dense result per trunk, however many branches share it."""
    return list({row.get(column) or id(row): row for row in reversed(list(rows))}.values())


def values(rows: Iterable[Row], column: str) -> list[float]:
    """The numeric values of a column, missing ones left out."""
    return [v for v in (number(r.get(column)) for r in rows) if v is not None]


def mean_std(xs: Sequence[float]) -> tuple[float, float, int] | None:
    """Mean, sample standard deviation (0 for a single value) and count; None when empty."""
    if not xs:
        return None
    arr = np.asarray(xs, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size)


@dataclass(frozen=True)
class Curve:
    """One line of a figure: x, and the mean, std and count of y over the runs (seeds) at each x."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray


def curve(rows: Iterable[Row], by: str, x: str, y: str, scale: float = 1.0) -> Curve | None:
    """Average ``y`` over the rows sharing a value of ``by``, placed at their mean ``x``; sorted by x."""
    points = []
    for cell in group((r for r in rows if r.get(by) is not None), [by]).values():
        xs, ys = values(cell, x), values(cell, y)
        stats = mean_std(ys)
        if xs and stats:
            points.append((float(np.mean(xs)), stats[0] * scale, stats[1] * scale, stats[2]))
    if not points:
        return None
    points.sort()
    cols = [np.asarray(c) for c in zip(*points)]
    return Curve(*cols)


def repeated_seeds(rows: Iterable[Row], keys: Sequence[str]) -> int:
    """How many (group, method, fraction, pruning time) cells hold one seed more than once."""
    cells = group(rows, [*keys, "method", "fraction", "prune_epoch"])
    return sum(len(c) != len({r.get("seed") for r in c}) for c in cells.values())
