"""Spectral distance between training dynamics (koopsweep.koopman.spectral), on linear systems with known spectra."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from koopsweep.koopman import fit_dmd
from koopsweep.koopman.spectral import (
    _hungarian,
    assignment,
    distance_matrix,
    mass_near_one,
    nearest_one,
    spectral_distance,
    spectral_gap,
    spectral_matching,
)


def real_block(lam: complex) -> np.ndarray:
    """The real 2 × 2 rotation-scaling block with eigenvalues λ, λ̄."""
    return np.array([[lam.real, -lam.imag], [lam.imag, lam.real]])


def linear_system(eigenvalues: list[complex], seed: int) -> np.ndarray:
    """A = P D P⁻¹ with the given spectrum (complex ones as conjugate pairs) and a random basis P."""
    blocks = [real_block(lam) if lam.imag else np.array([[lam.real]]) for lam in eigenvalues]
    size = sum(b.shape[0] for b in blocks)
    d = np.zeros((size, size))
    at = 0
    for b in blocks:
        d[at : at + b.shape[0], at : at + b.shape[0]] = b
        at += b.shape[0]
    p = np.random.default_rng(seed).normal(size=(size, size)) + 3 * np.eye(size)
    return p @ d @ np.linalg.inv(p)


def dmd_spectrum(a: np.ndarray, steps: int = 40, seed: int = 0) -> np.ndarray:
    """Eigenvalues exact DMD finds on a trajectory x_{t+1} = A x_t from a generic start."""
    x = np.random.default_rng(seed + 100).normal(size=a.shape[0])
    rows = [x]
    for _ in range(steps - 1):
        rows.append(a @ rows[-1])
    fit = fit_dmd(torch.tensor(np.array(rows)))
    return fit.eigenvalues.numpy()


SPECTRUM_A = [0.95, 0.5, complex(0.8, 0.1)]  # 4 eigenvalues in all: 0.95, 0.5, 0.8 ± 0.1i
SPECTRUM_B = [0.9, 0.5, complex(0.8, 0.15)]  # each moved by 0.05 or not at all


def test_dmd_recovers_the_constructed_spectrum() -> None:
    lam = dmd_spectrum(linear_system(SPECTRUM_A, seed=1))
    expected = np.array([0.95, 0.5, 0.8 + 0.1j, 0.8 - 0.1j])
    assert lam.shape == (4,)
    assert spectral_distance(lam, expected) < 1e-9


def test_conjugate_systems_are_at_distance_zero() -> None:
    """Same eigenvalues, different eigenvectors (A and PAP⁻¹): topologically conjugate, distance ≈ 0."""
    first = dmd_spectrum(linear_system(SPECTRUM_A, seed=1), seed=0)
    second = dmd_spectrum(linear_system(SPECTRUM_A, seed=2), seed=5)
    assert spectral_distance(first, second) < 1e-9


def test_distance_between_known_spectra() -> None:
    """0.95 → 0.9 (0.05), 0.5 → 0.5 (0), 0.8 ± 0.1i → 0.8 ± 0.15i (0.05 each): mean 0.0375."""
    first = dmd_spectrum(linear_system(SPECTRUM_A, seed=1))
    second = dmd_spectrum(linear_system(SPECTRUM_B, seed=3))
    assert spectral_distance(first, second) == pytest.approx(0.0375, abs=1e-9)
    assert spectral_distance(second, first) == pytest.approx(0.0375, abs=1e-9)


def test_matching_is_the_best_permutation() -> None:
    """Brute force over every permutation: the assignment's mean distance is the minimum."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=6) + 1j * rng.normal(size=6)
        b = rng.normal(size=6) + 1j * rng.normal(size=6)
        best = min(np.abs(a - b[list(p)]).mean() for p in itertools.permutations(range(6)))
        assert spectral_distance(a, b) == pytest.approx(best, abs=1e-12)


def test_unequal_sizes_match_the_smaller_set_only() -> None:
    """As the authors' code: a rectangular assignment, the extra eigenvalues of the larger set ignored."""
    small = np.array([1.0, 0.5])
    large = np.array([0.99, 0.52, -0.7, 0.1j])
    match = spectral_matching(small, large)
    assert list(match.cols) == [0, 1]
    assert match.distance == pytest.approx((0.01 + 0.02) / 2)
    assert spectral_distance(large, small) == pytest.approx(match.distance)
    assert spectral_distance(small, np.concatenate([small, [0.3]])) == 0.0


def test_nearest_keeps_the_slow_modes() -> None:
    lam = np.array([0.2, 0.999, -0.9, 0.97 + 0.01j, 0.97 - 0.01j])
    assert list(nearest_one(lam, 3)) == [0.999, 0.97 + 0.01j, 0.97 - 0.01j]
    other = np.array([0.998, 0.96 + 0.01j, 0.96 - 0.01j, 0.5, 0.4, 0.3])
    assert spectral_distance(lam, other, nearest=3) == pytest.approx((0.001 + 0.01 + 0.01) / 3)


def test_hungarian_fallback_matches_scipy() -> None:
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(1)
    for n, m in ((1, 1), (4, 9), (9, 4), (30, 30), (25, 60)):
        cost = rng.random((n, m))
        if n <= m:
            rows, cols = _hungarian(cost)
        else:
            cols, rows = _hungarian(cost.T)
        ref_rows, ref_cols = scipy_optimize.linear_sum_assignment(cost)
        assert len(set(cols.tolist())) == min(n, m)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum(), abs=1e-12)
    rows, cols = assignment(rng.random((5, 3)))
    assert list(rows) == sorted(rows) and len(rows) == 3


def test_distance_matrix_is_symmetric_with_zero_diagonal() -> None:
    spectra = [np.array([1.0, 0.5]), np.array([0.9, 0.5]), np.array([1.0, 0.3])]
    matrix = distance_matrix(spectra)
    assert np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    assert matrix[0, 1] == pytest.approx(0.05) and matrix[0, 2] == pytest.approx(0.1)


def test_scalars_of_one_spectrum() -> None:
    lam = np.array([1.0 + 1e-6, 0.99, 0.9, 0.5 + 0.5j])
    assert spectral_gap(lam) == pytest.approx(0.01 - 1e-6)
    assert mass_near_one(lam, 0.02) == pytest.approx(0.5)
    assert np.isnan(spectral_gap([1.0]))
    with pytest.raises(ValueError, match="finite"):
        spectral_distance([np.nan], [1.0])


def test_max_rank_is_the_truncated_dmd_of_the_width_study() -> None:
    """max_rank = k keeps the k largest singular directions of X: the textbook truncated DMD (Ã = U_kᵀ Y V_k Σ_k⁻¹)
    computed densely gives the same eigenvalues; with delays the embedded states are truncated the same way."""
    rng = np.random.default_rng(4)
    trajectory = rng.normal(size=(30, 12)).cumsum(0)  # a random walk: every direction has some weight
    for delays, k in ((0, 4), (2, 6)):
        fit = fit_dmd(torch.tensor(trajectory), delays=delays, max_rank=k)
        states = np.hstack([trajectory[delays - j : len(trajectory) - j] for j in range(delays + 1)])
        x, y = states[:-1].T, states[1:].T
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        atilde = u[:, :k].T @ y @ vh[:k].T / s[:k]
        assert fit.rank == k and fit.summary()["max_rank"] == k
        assert spectral_distance(fit.eigenvalues.numpy(), np.linalg.eigvals(atilde)) < 1e-9
    with pytest.raises(ValueError, match="max_rank"):
        fit_dmd(torch.tensor(trajectory), max_rank=-1)
