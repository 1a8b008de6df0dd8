"""Exact DMD (Tu et al. 2014) by the method of snapshots, with time delays and Koopman gradient reconstruction.

All N-dimensional work is the float64 increment Gram (built while recording, or here for a tensor) and one
streamed pass over the snapshots per batch of requested modes; everything else is dense algebra in the
T-dimensional span of the snapshots. See docs/koopman.md for the derivation and the numerical choices:

1. H = WWᵀ (increment Gram) → column-equilibrated eigendecomposition → W = C Qᵀ with Q orthonormal (N × r0);
   directions at the float64 noise floor of H are dropped (logged).
2. R = cumsum(C): coordinates of the snapshots, Z = R Qᵀ. Delays stack shifted rows of R (Hankel), which is
   the delay-embedded trajectory in the orthonormal basis blockdiag(Q, …, Q) — no N·d copy.
3. Exact DMD on the small coordinates, with a real SVD of X (never XᵀX: no squared condition number):
   X = UΣVᵀ, Ã = UᵀYVΣ⁻¹, Ãw = λw, ϕ = λ⁻¹YVΣ⁻¹w, b = Φ⁺x₀ (Q is orthonormal, so Φ⁺x₀ is solved in small space).
4. A mode in parameter space is Σ_i E[i] z_i with E = the coefficients of step 3, evaluated by one pass.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

from koopsweep.errors import KoopsweepError
from koopsweep.koopman.gram import combine, increment_gram, tensor_blocks
from koopsweep.koopman.memory import MemoryWindow
from koopsweep.koopman.window import SnapshotWindow

Recorded = SnapshotWindow | MemoryWindow  # windows that carry their increment Gram

log = logging.getLogger(__name__)

EPS = torch.finfo(torch.float64).eps
DIAGNOSTICS = (
    "residual",
    "fixed_point_distance",
    "amplitude_share",
    "share_near_one",
    "reconstruction_error",
    "spectral_radius",
    "unstable_modes",
)  # bounded health figures of a fit (see diagnose); docs/koopman.md says what is healthy
NEAR_ONE = 1e-3  # |λ − 1| within which modes count as the same slow part (share_near_one)
TINY_EIGENVALUE = 1e-12  # |λ| below this (relative to max |λ|): use the projected mode Uw (Tu et al.)


@dataclass
class _Core:
    """Small-space result of the fit (everything except the N-dimensional passes)."""

    eigenvalues: torch.Tensor  # (r,) complex128
    amplitudes: torch.Tensor  # (r,) complex128
    coefficients: torch.Tensor  # (T, r) complex128: mode j (first N-block) = Σ_i E[i, j] z_i
    singular_values: torch.Tensor  # (r,) float64, kept
    dropped_null: int  # directions dropped as numerically null (Gram floor + SVD floor)
    dropped_tol: int  # directions dropped by rank_tol
    block0: torch.Tensor  # (r0, r) complex128: first-block small coordinates of the modes (for norms)
    small: torch.Tensor  # (K, r) complex128: all small coordinates of the modes (amplitudes at any snapshot)
    embedded: torch.Tensor  # (T − d, K) float64: the (delay-embedded) snapshots in the small coordinates
    diagnostics: dict[str, float | None]  # bounded health figures of the fit (see diagnose); None = not finite


def _basis(inc_gram: torch.Tensor) -> tuple[torch.Tensor, int]:
    """C (T × r0) with W = C Qᵀ, Q orthonormal; and the number of numerically null directions dropped."""
    count = inc_gram.shape[0]
    scale = inc_gram.diagonal().clamp_min(0).sqrt()
    live = scale > 0
    if not live.any():
        raise KoopsweepError("the snapshot window is all zeros: there is nothing to fit (was θ recorded?)")
    s = scale[live]
    normalized = inc_gram[live][:, live] / (s[:, None] * s[None, :])
    omega, p = torch.linalg.eigh(normalized)
    keep = omega > count * EPS * omega.max().clamp_min(EPS)
    c = torch.zeros(count, int(keep.sum()), dtype=torch.float64)
    c[live] = s[:, None] * p[:, keep] * omega[keep].sqrt()
    return c, int((~live).sum()) + int((~keep).sum())


def _inverse(lam: torch.Tensor) -> torch.Tensor:
    """1/λ, with (near-)zero eigenvalues mapped to 0, not inf (their modes carry no previous step)."""
    out = torch.zeros_like(lam)
    ok = lam.abs() > TINY_EIGENVALUE
    out[ok] = 1 / lam[ok]
    return out


def _solve(inc_gram: torch.Tensor, rank_tol: float, delays: int, max_rank: int = 0) -> _Core:
    count = inc_gram.shape[0]
    if not torch.isfinite(inc_gram).all():
        raise KoopsweepError(
            "the snapshot window contains NaN/Inf (training diverged before the pruning time): "
            "lower the learning rate or prune earlier"
        )
    if delays < 0 or count < delays + 2:
        raise ValueError(f"exact DMD with delays={delays} needs at least {delays + 2} snapshots, got {count}")
    c, dropped = _basis(inc_gram)
    r0 = c.shape[1]
    coords = c.cumsum(0)  # Z = coords Qᵀ
    embedded = torch.cat([coords[delays - k : count - k] for k in range(delays + 1)], dim=1)  # (T', r0 (d+1))
    xs, ys = embedded[:-1].T, embedded[1:].T  # K × m columns, as in the textbook
    u, sig, vh = torch.linalg.svd(xs, full_matrices=False)
    if not sig[0] > 0:
        raise KoopsweepError("the snapshot window is all zeros before its last snapshot: there is nothing to fit")
    floor = max(xs.shape) * EPS * sig[0]
    null = (sig <= floor) & (torch.arange(sig.shape[0]) > 0)
    beyond = torch.arange(sig.shape[0]) >= max_rank if max_rank > 0 else torch.zeros_like(null)
    cut = ((sig < rank_tol * sig[0]) | beyond) & ~null  # the largest max_rank directions at most (0: all)
    keep = ~(null | cut)
    dropped += int(null.sum())
    u, sig, v = u[:, keep], sig[keep], vh[keep].T
    v_sinv = v / sig
    atilde = u.T @ ys @ v_sinv
    lam, w = torch.linalg.eig(atilde)
    order = torch.argsort(lam.abs(), descending=True, stable=True)
    lam, w = lam[order], w[:, order]
    a = v_sinv.to(torch.complex128) @ w  # (m, r)
    exact = lam.abs() > TINY_EIGENVALUE * lam.abs().max()
    a[:, exact] = a[:, exact] / lam[exact]
    coefficients = torch.zeros(count, lam.shape[0], dtype=torch.complex128)
    coefficients[delays + 1 :, exact] = a[:, exact]  # ϕ = Y a: Y's rows are z_{d+1} … z_{T-1} (first block)
    coefficients[delays : count - 1, ~exact] = a[:, ~exact]  # projected ϕ = U w = X a
    small = torch.where(exact[None, :], ys.to(torch.complex128) @ a, xs.to(torch.complex128) @ a)  # (K, r)
    x0 = xs[:, 0].to(torch.complex128)
    amplitudes = torch.linalg.lstsq(small, x0[:, None], driver="gelsd").solution[:, 0]
    if dropped:
        log.warning("DMD: dropped %d numerically null direction(s) of the snapshot span", dropped)
    chosen = int(torch.argmin((lam - 1).abs()))
    c = v_sinv.to(torch.complex128) @ w[:, chosen]
    diagnostics = diagnose(lam, amplitudes, small[:r0], coords, delays, chosen, xs, ys, c)
    return _Core(lam, amplitudes, coefficients, sig, dropped, int(cut.sum()), small[:r0], small, embedded, diagnostics)


def diagnose(
    lam: torch.Tensor,
    b: torch.Tensor,
    block0: torch.Tensor,
    coords: torch.Tensor,
    delays: int,
    chosen: int,
    xs: torch.Tensor,
    ys: torch.Tensor,
    c: torch.Tensor,
) -> dict[str, float | None]:
    """Health figures of a fit, each bounded and computed exactly in the orthonormal small coordinates.

    - ``residual``: ‖(Y − λ*X) c‖ / ‖X c‖ for the chosen eigenpair, c = VΣ⁻¹w* the mode's snapshot coefficients
      (the data-driven residual of Colbrook & Townsend's ResDMD): how well the combination of snapshots that
      defines ϕ* is really multiplied by λ* from one step to the next. Small (≪ 1) is healthy.
    - ``fixed_point_distance``: ‖θ* − θ(t)‖ / ‖θ(t)‖, how far the weights at the pruning time are from the
      Koopman fixed point; KMP equals GMP once this is below the gaps between weights at the threshold.
    - ``amplitude_share``: |b*|‖ϕ*‖ / Σ_j |b_j|‖ϕ_j‖ in [0, 1], the chosen mode's share of the decomposition.
    - ``share_near_one``: the same share among the modes with |λ − 1| <= NEAR_ONE only; 1 when the chosen mode is
      alone there. Well below 1 means a slow drift that exact DMD split into 1 ± δ: θ* from the nearest mode alone
      (the paper's KMP) is then an arbitrary part of the slow weights (koopman.cluster_radius takes them all).
    - ``reconstruction_error``: ‖Θ̂ − Θ‖_F / ‖Θ‖_F over the window with amplitudes fitted to the whole window
      (Jovanović et al. 2014) instead of to its first snapshot, so unstable modes (|λ| > 1) get the tiny
      amplitudes their growth calls for; in [0, 1] (amplitudes 0 give 1).
    - ``spectral_radius`` and ``unstable_modes`` (|λ| > 1 + 1e-6): the growth the free-run reconstruction from
      θ(t0) would suffer, which is why that error is not reported.
    """
    xc, yc = xs.to(torch.complex128) @ c, ys.to(torch.complex128) @ c
    residual = float(torch.linalg.norm(yc - lam[chosen] * xc) / torch.linalg.norm(xc).clamp_min(EPS))
    theta = coords[-1]
    fixed_point = (b[chosen] * block0[:, chosen]).real
    distance = float(torch.linalg.norm(fixed_point - theta) / torch.linalg.norm(theta).clamp_min(EPS))
    weights = b.abs() * torch.linalg.norm(block0, dim=0)
    share = float(weights[chosen] / weights.sum().clamp_min(EPS))
    near = (lam - 1).abs() <= NEAR_ONE
    near[chosen] = True
    figures = {
        "residual": residual,
        "fixed_point_distance": distance,
        "amplitude_share": share,
        "share_near_one": float(weights[chosen] / weights[near].sum().clamp_min(EPS)),
        "reconstruction_error": _window_error(lam, block0, coords[delays:]),
        "spectral_radius": float(lam.abs().max()),
        "unstable_modes": float((lam.abs() > 1 + 1e-6).sum()),
    }
    return {k: v if math.isfinite(v) else None for k, v in figures.items()}


def _window_error(lam: torch.Tensor, block0: torch.Tensor, target: torch.Tensor) -> float:
    """Relative error of the best reconstruction Σ_j λ_j^k b_j ϕ_j of the window (amplitudes by least squares).

    Powers are scaled by max(1, |λ|)^(T−1) (folded into the amplitude), so no power overflows; the normal
    equations P b = q of Jovanović et al. are solved with a pseudo-inverse, and the error is measured on the
    reconstruction itself, so an inexact solve can only raise it, never past 1 (the error of b = 0).
    """
    steps = target.shape[0]
    k = torch.arange(steps, dtype=torch.float64)
    log_lam = torch.log(lam.to(torch.complex128).where(lam != 0, torch.full_like(lam, 1e-300)))
    scale = torch.clamp(lam.abs(), min=1.0).log() * (steps - 1)
    vander = torch.exp(k[:, None] * log_lam[None, :] - scale[None, :])  # (T, r), |entries| <= 1
    vander[1:, lam == 0] = 0
    z = target.T.to(torch.complex128)  # (r0, T)
    gram_modes = block0.conj().T @ block0
    p = gram_modes * (vander.conj().T @ vander)
    q = ((block0.conj().T @ z) * vander.conj().T).sum(1)
    b = torch.linalg.lstsq(p, q[:, None], rcond=1e-13, driver="gelsd").solution[:, 0]
    recon = block0 @ (b[:, None] * vander.T)
    norm = torch.linalg.norm(z).clamp_min(EPS)
    error = float(torch.linalg.norm(recon - z) / norm)
    return min(error, 1.0) if math.isfinite(error) else 1.0


def require_finite(vectors: torch.Tensor, what: str) -> torch.Tensor:
    """``vectors`` unchanged when every entry is finite; else one line: such a fit cannot score weights."""
    if not torch.isfinite(vectors).all():
        raise KoopsweepError(
            f"the Koopman fit gives a non-finite {what}: it cannot score weights "
            "(see koopman/residual in the log; try koopman.rank_tol=1e-10 or another koopman.window)"
        )
    return vectors


class DMDFit:
    """The result of ``fit_dmd``: spectrum, amplitudes, and parameter-space vectors on demand (one pass each).

    Gradient descent on a quadratic loss ½ Σ h_k (θ_k − θ*_k)² is linear, so the fit is exact: eigenvalues 1 − lr·h,
    and the gradient reconstruction (KGP's ĝ) is the true gradient:

    >>> import torch
    >>> from koopsweep import fit_dmd
    >>> h = torch.tensor([1.0, 4.0, 9.0, 1.0, 4.0, 9.0], dtype=torch.float64)
    >>> theta_star = torch.tensor([1.0, -2.0, 3.0, 0.5, 0.0, 2.0], dtype=torch.float64)
    >>> lr, theta = 0.05, [torch.ones(6, dtype=torch.float64)]
    >>> for _ in range(12):
    ...     theta.append(theta[-1] - lr * h * (theta[-1] - theta_star))
    >>> fit = fit_dmd(torch.stack(theta))
    >>> fit.rank, [round(lam, 6) for lam in sorted(fit.eigenvalues.real.tolist())]
    (4, [0.55, 0.8, 0.95, 1.0])
    >>> torch.allclose(fit.gradient(12, lr, dtype=torch.float64), h * (theta[12] - theta_star))
    True
    """

    def __init__(
        self,
        core: _Core,
        source: torch.Tensor | Recorded,
        delays: int,
        rank_tol: float,
        device: torch.device,
        max_rank: int = 0,
    ):
        self._core = core
        self._source = source
        self.delays = delays
        self.rank_tol = rank_tol
        self.max_rank = max_rank
        self.device = device
        self.eigenvalues: torch.Tensor = core.eigenvalues
        self.amplitudes: torch.Tensor = core.amplitudes
        self.singular_values: torch.Tensor = core.singular_values
        self.rank: int = int(core.eigenvalues.shape[0])
        self.count: int = int(core.coefficients.shape[0])
        self.numel: int = int(source.shape[1] if isinstance(source, torch.Tensor) else source.numel)
        self.closest_index: int = int(torch.argmin((core.eigenvalues - 1).abs()))
        self.diagnostics: dict[str, float | None] = core.diagnostics
        scaled = core.block0[:, self.closest_index] * core.amplitudes[self.closest_index]
        self.imag_ratio: float = float(scaled.imag.norm() / scaled.real.norm().clamp_min(EPS))
        lam = self.eigenvalues[self.closest_index]
        log.info(
            "DMD: rank %d of %d snapshots (delays %d), λ* = %.8f%+.8fi, |Im ϕ*|/|Re ϕ*| = %.2e, residual %.2e",
            self.rank,
            self.count,
            delays,
            lam.real,
            lam.imag,
            self.imag_ratio,
            self.diagnostics["residual"],
        )
        if self.imag_ratio > 1e-3:
            log.warning(
                "DMD: the mode nearest 1 is complex (imag/real = %.2e): KMP scores are unreliable", self.imag_ratio
            )

    @property
    def chosen_eigenvalue(self) -> complex:
        """The eigenvalue nearest 1 (the fixed-point mode's)."""
        return complex(self.eigenvalues[self.closest_index])

    def _pass(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Σ_i coeffs[i] z_i for real (T, k) coefficients: one streamed pass over the snapshots."""
        if isinstance(self._source, MemoryWindow):
            return self._source.combine(coeffs, self.device)
        if isinstance(self._source, SnapshotWindow):
            blocks = self._source.chunks()
        else:
            blocks = tensor_blocks(self._source)
        return combine(blocks, self.numel, coeffs, self.device)

    def combine(self, weights: torch.Tensor) -> torch.Tensor:
        """Re Σ_j weights_j ϕ_j (first N-block) as a float64 vector, in one pass."""
        return self.combine_many([weights])[:, 0]

    def combine_many(self, weights: list[torch.Tensor]) -> torch.Tensor:
        """Re Σ_j w_j ϕ_j for each weight vector, as the columns of an (N, k) float64 tensor: one pass for all."""
        stacked = torch.stack([w.to(torch.complex128) for w in weights], dim=1)
        return self._pass((self._core.coefficients @ stacked).real)

    def modes(self, indices: list[int]) -> torch.Tensor:
        """Modes ϕ_j (first N-block), complex128, shape (N, len(indices)); one pass for the whole batch."""
        e = self._core.coefficients[:, indices]
        out = self._pass(torch.cat([e.real, e.imag], dim=1))
        k = len(indices)
        return torch.complex(out[:, :k], out[:, k:])

    def mode(self, j: int) -> torch.Tensor:
        """Mode ϕ_j (first N-block), complex128, shape (N,)."""
        return self.modes([j])[:, 0]

    def fixed_point_weights(self, cluster_radius: float = 0.0) -> torch.Tensor:
        """Mode weights of θ*: with ``cluster_radius`` 0 (the paper's), Re(b* ϕ*) for the eigenvalue nearest 1
        alone; otherwise every mode with |λ − 1| <= ``cluster_radius`` (the nearest always), each weighted by its
        amplitude at the last snapshot (``cluster_indices``).

        Why a cluster: a network still drifting slowly (continued training at a small constant rate) has a Jordan
        block at λ = 1 (θ ≈ a + b t), which exact DMD splits into two eigenvalues 1 ± δ with large amplitudes of
        opposite sign; the nearest mode alone then carries an arbitrary share of θ. Their sum is well conditioned:
        the slow part of θ at the pruning time.
        """
        weights = torch.zeros(self.rank, dtype=torch.complex128)
        if cluster_radius <= 0:
            weights[self.closest_index] = self.amplitudes[self.closest_index]
            return weights
        cluster = self.cluster_indices(cluster_radius)
        weights[cluster] = self.amplitudes_at(self.count - 1 - self.delays)[cluster]
        return weights

    def cluster_indices(self, cluster_radius: float) -> torch.Tensor:
        """Indices of the eigenvalues within ``cluster_radius`` of 1, the nearest one always among them."""
        inside = (self.eigenvalues - 1).abs() <= cluster_radius
        inside[self.closest_index] = True
        return torch.nonzero(inside).flatten()

    def fixed_point(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Re(b* ϕ*) for the eigenvalue nearest 1: the Koopman estimate of θ* (KMP scores its magnitude)."""
        return self.combine(self.fixed_point_weights()).to(dtype)

    def amplitudes_at(self, s: int) -> torch.Tensor:
        """Mode amplitudes fitted to the (embedded) snapshot s itself: a_s = Φ⁺x_s, least squares in small space.

        Equal to λ^s b for data the linear model fits exactly, but never a power: b propagated by λ^s lets
        the |λ| > 1 noise modes of an untruncated fit grow by |λ|^s (1.27^469 ≈ 1e48 overflows float32).
        """
        if not 0 <= s < self._core.embedded.shape[0]:
            raise ValueError(f"snapshot {s} is outside the window's {self._core.embedded.shape[0]} embedded states")
        target = self._core.embedded[s].to(torch.complex128)
        return torch.linalg.lstsq(self._core.small, target[:, None], driver="gelsd").solution[:, 0]

    def gradient_weights(self, t: int, lr: float, momentum: float = 0.0) -> torch.Tensor:
        """Mode weights of ĝ(t) (see ``gradient``): −(λ_j − 1)(1 − β/λ_j) a_j(s) / η, s = t − d."""
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        lam = self.eigenvalues
        factor = lam - 1
        if momentum:
            factor = factor * (1 - momentum * _inverse(lam))
        return -factor * self.amplitudes_at(t - self.delays) / lr

    def gradient(self, t: int, lr: float, momentum: float = 0.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """KGP: the Koopman reconstruction of the gradient at snapshot index ``t`` of the window.

        Heavy ball: Δθ(t) = βΔθ(t−1) − ηg(t) ⇒ g(t) = −(Δθ(t) − βΔθ(t−1))/η, and with the state at t written in
        the modes, x(t) = Σ_j a_j ϕ_j, the model's step is Δθ(t) = Σ_j (λ_j − 1) a_j ϕ_j and the previous one
        Σ_j (λ_j − 1) λ_j⁻¹ a_j ϕ_j, so
        ĝ(t) = −(1/η) Re Σ_j (λ_j − 1)(1 − β/λ_j) a_j ϕ_j, with a = Φ⁺x(t) (``amplitudes_at``).
        Plain gradient descent is β = 0. Exact for a quadratic loss; with β > 0 only with delays ≥ 1.
        """
        return require_finite(self.combine(self.gradient_weights(t, lr, momentum)), "ĝ").to(dtype)

    def summary(self) -> dict[str, Any]:
        """JSON-able record of the fit (for results.json and W&B)."""
        lam = self.chosen_eigenvalue
        return {
            "eigenvalue": {"re": lam.real, "im": lam.imag, "abs": abs(lam), "distance_to_1": abs(lam - 1)},
            "rank": self.rank,
            "snapshots": self.count,
            "delays": self.delays,
            "rank_tol": self.rank_tol,
            "max_rank": self.max_rank,
            "dropped_null": self._core.dropped_null,
            "dropped_tol": self._core.dropped_tol,
            "imag_ratio": self.imag_ratio,
            **self.diagnostics,
            "spectrum": {"re": self.eigenvalues.real.tolist(), "im": self.eigenvalues.imag.tolist()},
            "amplitude_abs": self.amplitudes.abs().tolist(),
        }

    def __repr__(self) -> str:
        lam = self.chosen_eigenvalue
        return f"DMDFit(rank={self.rank}, snapshots={self.count}, delays={self.delays}, λ*={lam:.6f})"


def fit_dmd(
    snapshots: torch.Tensor | Recorded,
    rank_tol: float = 0.0,
    delays: int = 0,
    device: torch.device | str | None = None,
    max_rank: int = 0,
) -> DMDFit:
    """Exact DMD of a trajectory: a (T, N) tensor (row t = θ(t0 + t)) or a recorded window (disk or memory).

    ``rank_tol`` drops directions with σ < rank_tol·σ_max (0: untruncated, as the paper; numerically null
    directions are always dropped and logged). ``delays`` = d uses the state [θ(t); …; θ(t−d)]. ``device`` runs
    the N-dimensional passes (default: the tensor's device, or the CPU for a window). ``max_rank`` = k keeps the
    k largest singular directions at most (0: all), the truncated DMD of Redman et al. 2024's width study.

    >>> import torch
    >>> from koopsweep import fit_dmd
    >>> theta_star = torch.tensor([1.0, -2.0, 3.0, 0.5, 0.0, 2.0], dtype=torch.float64)
    >>> v1 = torch.tensor([0.5, 0.25, -1.0, 0.0, 1.0, 0.3], dtype=torch.float64)
    >>> v2 = torch.tensor([0.0, 1.0, 0.5, -0.5, 0.2, 0.0], dtype=torch.float64)
    >>> trajectory = torch.stack([theta_star + 0.9**t * v1 + 0.5**t * v2 for t in range(20)])  # (T, N)
    >>> fit = fit_dmd(trajectory)
    >>> round(fit.chosen_eigenvalue.real, 9)  # the eigenvalue nearest 1: its mode is the fixed point
    1.0
    >>> torch.allclose(fit.fixed_point(torch.float64), theta_star)  # θ*, what KMP scores
    True
    """
    if not 0 <= rank_tol < 1:
        raise ValueError(f"rank_tol must be in [0, 1), got {rank_tol}")
    if max_rank < 0:
        raise ValueError(f"max_rank must be >= 0 (0 = all), got {max_rank}")
    if isinstance(snapshots, (SnapshotWindow, MemoryWindow)):
        gram = snapshots.increment_gram
        dev = torch.device(device) if device is not None else torch.device("cpu")
    else:
        if snapshots.ndim != 2:
            raise ValueError(f"snapshots must be a (T, N) tensor, got shape {tuple(snapshots.shape)}")
        if not snapshots.is_floating_point():
            raise ValueError(f"snapshots must be floating point, got {snapshots.dtype}")
        dev = torch.device(device) if device is not None else snapshots.device
        gram = increment_gram(snapshots, dev)
    core = _solve(gram.to(device="cpu", dtype=torch.float64), rank_tol, int(delays), int(max_rank))
    return DMDFit(core, snapshots, int(delays), rank_tol, dev, int(max_rank))
