"""Rank and linear correlation with a permutation p-value: how well one scalar orders another, on a few points.

No SciPy needed: Spearman's ρ is Pearson's r of the ranks (ties share their mean rank), and the p-value counts
how often a random pairing of the same values correlates at least as strongly (two-sided, seeded, so a report is
reproducible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 5000


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    out = np.empty(x.size)
    sorted_x = x[order]
    start = 0
    while start < x.size:
        stop = start + 1
        while stop < x.size and sorted_x[stop] == sorted_x[start]:
            stop += 1
        out[order[start:stop]] = (start + stop + 1) / 2
        start = stop
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; NaN when either side is constant or there are fewer than 3 points."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation ρ."""
    return pearson(ranks(x), ranks(y))


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


@dataclass(frozen=True)
class Correlation:
    """How one scalar relates to another over ``n`` points."""

    n: int
    spearman: float
    pearson: float
    p_value: float  # two-sided permutation p of ρ


def correlate(x: Sequence[float], y: Sequence[float], permutations: int = PERMUTATIONS, seed: int = 0) -> Correlation:
    """ρ, r and the permutation p-value of ρ over the pairs where both values are finite."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    rho = spearman(a, b)
    if not np.isfinite(rho):
        return Correlation(int(a.size), rho, pearson(a, b), float("nan"))
    ra, rb = _standard(ranks(a)), _standard(ranks(b))
    shuffled = np.random.default_rng(seed).permuted(np.tile(rb, (permutations, 1)), axis=1) @ ra / a.size
    p = (1 + np.sum(np.abs(shuffled) >= abs(rho) - 1e-12)) / (permutations + 1)
    return Correlation(int(a.size), rho, pearson(a, b), float(p))
