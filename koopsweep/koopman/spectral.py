"""Comparing training dynamics through their Koopman spectra, and scalars that read convergence off one spectrum.

Redman et al., "Identifying Equivalent Training Dynamics" (NeurIPS 2024): topologically conjugate dynamics share
their Koopman eigenvalues, so the distance between two runs' dynamics is the Wasserstein distance between their
eigenvalue sets, points in the complex plane matched one to one by a linear assignment. As in the authors' code,
the distance is the mean |λ_i − μ_σ(i)| over the optimal matching σ; when the sets differ in size only the smaller
one is matched (each of its points to a distinct point of the larger), so it is then a partial matching, not a
metric (a set is at distance 0 from any superset). ``nearest=k`` compares the k eigenvalues nearest 1 of each set
instead: equal sizes, and the slow modes that decide where training goes.

The assignment uses SciPy's ``linear_sum_assignment`` when SciPy is installed and a shortest-augmenting-path
Hungarian method of its own otherwise (same optimum; a few seconds for 469 × 469 instead of milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Eigenvalues = Sequence[complex] | np.ndarray
NEAR_ONE = 1e-2  # ε of mass_near_one: the report's and a run's koopman/near_one_share


def as_eigenvalues(values: Eigenvalues) -> np.ndarray:
    """A flat complex128 array; NaN/Inf entries (an overflowed fit) are refused: they have no place in the plane."""
    lam = np.asarray(values, dtype=np.complex128).ravel()
    if not np.isfinite(lam).all():
        raise ValueError("eigenvalues must be finite")
    return lam


def nearest_one(values: Eigenvalues, count: int) -> np.ndarray:
    """The ``count`` eigenvalues nearest λ = 1 (all of them when there are fewer), nearest first."""
    lam = as_eigenvalues(values)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return lam[np.argsort(np.abs(lam - 1), kind="stable")[:count]]


def _hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-cost assignment of every row to a distinct column (rows <= columns), by shortest augmenting paths.

    The O(n²m) potentials method (Kuhn–Munkres as in Jonker & Volgenant): each row is added along the shortest
    alternating path in reduced costs; the inner scan over columns is one vectorised step.
    """
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row (1-based) holding column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], col = i, 0
        slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while owner[col] != 0:
            used[col] = True
            row = owner[col]
            free = ~used[1:]
            reduced = cost[row - 1] - u[row] - v[1:]
            better = free & (reduced < slack[1:])
            slack[1:][better] = reduced[better]
            way[1:][better] = col
            candidates = np.where(free, slack[1:], np.inf)
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            slack[~used] -= delta
            col = nxt
        while col:
            prev = way[col]
            owner[col] = owner[prev]
            col = prev
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]


def assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a min-cost matching of min(n, m) pairs in a real n × m cost matrix, rows ascending."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or not np.isfinite(cost).all():
        raise ValueError("cost must be a finite 2-D matrix")
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # SciPy is optional: the same optimum, computed here
        if cost.shape[0] <= cost.shape[1]:
            return _hungarian(cost)
        cols, rows = _hungarian(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    rows, cols = linear_sum_assignment(cost)
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


@dataclass(frozen=True)
class Matching:
    """The optimal one-to-one matching of two eigenvalue sets: pairs (a[i], b[j]) and their distances."""

    a: np.ndarray
    b: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    @property
    def distances(self) -> np.ndarray:
        return np.abs(self.a[self.rows] - self.b[self.cols])

    @property
    def distance(self) -> float:
        """Mean distance over the matched pairs: the spectral (Wasserstein-1) distance."""
        return float(self.distances.mean()) if self.rows.size else 0.0


def spectral_matching(eigs_a: Eigenvalues, eigs_b: Eigenvalues, nearest: int | None = None) -> Matching:
    """Match the eigenvalues of two fits one to one at least total distance (see ``spectral_distance``)."""
    a, b = as_eigenvalues(eigs_a), as_eigenvalues(eigs_b)
    if nearest is not None:
        a, b = nearest_one(a, nearest), nearest_one(b, nearest)
    if a.size == 0 or b.size == 0:
        raise ValueError("both eigenvalue sets must be non-empty")
    rows, cols = assignment(np.abs(a[:, None] - b[None, :]))
    return Matching(a, b, rows, cols)


def spectral_distance(eigs_a: Eigenvalues, eigs_b: Eigenvalues, nearest: int | None = None) -> float:
    """Wasserstein distance between two Koopman spectra as point sets in the complex plane.

    The mean |λ − μ| over the one-to-one matching that minimises it (Redman et al. 2024, as their code computes
    it). Sets of different sizes: only the smaller is matched, each of its eigenvalues to a distinct one of the
    larger; the rest of the larger set is ignored. ``nearest=k`` first keeps the k eigenvalues nearest 1 of each
    set. Conjugate dynamics (same eigenvalues, any eigenvectors) are at distance 0.
    """
    return spectral_matching(eigs_a, eigs_b, nearest).distance


def distance_matrix(spectra: Sequence[Eigenvalues], nearest: int | None = None) -> np.ndarray:
    """Symmetric matrix of ``spectral_distance`` between every pair of spectra (zero diagonal)."""
    count = len(spectra)
    out = np.zeros((count, count))
    for i in range(count):
        for j in range(i + 1, count):
            out[i, j] = out[j, i] = spectral_distance(spectra[i], spectra[j], nearest)
    return out


# ---------------------------------------------------------------------------------------------- one spectrum
def spectral_gap(values: Eigenvalues) -> float:
    """|λ₂ − 1| − |λ* − 1|: how far the slowest transient sits from the fixed-point eigenvalue λ* nearest 1.

    Training settling at a fixed point has λ* ≈ 1 set apart from the rest; a small gap means another slow mode is
    still moving the weights. NaN for a single eigenvalue.
    """
    lam = as_eigenvalues(values)
    if lam.size < 2:
        return float("nan")
    d = np.sort(np.abs(lam - 1))
    return float(d[1] - d[0])


def mass_near_one(values: Eigenvalues, eps: float = NEAR_ONE) -> float:
    """Share of eigenvalues within ``eps`` of 1: the slow modes whose clustering near 1 Mohr et al. read as the
    sign that training has settled."""
    lam = as_eigenvalues(values)
    if lam.size == 0:
        return float("nan")
    return float(np.mean(np.abs(lam - 1) < eps))
