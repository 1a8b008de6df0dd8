"""Exact DMD by the method of snapshots: known systems, dense and PyDMD oracles, KGP with and without delays."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from koopsweep.errors import KoopsweepError
from koopsweep.koopman import fit_dmd, increment_gram, raw_gram

torch.set_num_threads(1)
F64 = torch.float64


# ------------------------------------------------------------------------------------------- helpers / oracles
def delay_gram(gram: torch.Tensor, delays: int) -> torch.Tensor:
    """Gram of the delay-embedded states s(t) = [z_t; …; z_{t−d}], t = d…T−1: G'[i, j] = Σ_k G[i+d−k, j+d−k].

    The fit uses the equivalent Hankel stacking of small coordinates; this oracle checks that equivalence.
    """
    count = gram.shape[0]
    if not 0 <= delays < count:
        raise ValueError(f"delays={delays} needs at least {delays + 1} snapshots, got {count}")
    size = count - delays
    out = torch.zeros(size, size, dtype=gram.dtype, device=gram.device)
    for k in range(delays + 1):
        out += gram[delays - k : delays - k + size, delays - k : delays - k + size]
    return out


def dense_exact_dmd(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textbook exact DMD (Tu et al.): dense SVD of X, no truncation beyond the numerical null space."""
    x, y = z[:-1].T, z[1:].T
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    keep = s > max(x.shape) * np.finfo(float).eps * s[0]
    u, s, v = u[:, keep], s[keep], vh[keep].conj().T
    atilde = u.T @ y @ v / s
    lam, w = np.linalg.eig(atilde)
    phi = (y @ v / s) @ w / lam
    b = np.linalg.lstsq(phi, x[:, 0], rcond=None)[0]
    return lam, phi, b


def match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reorder ``b`` to pair each of ``a`` with its nearest unused element."""
    b = list(b)
    out = []
    for value in a:
        k = int(np.argmin([abs(value - other) for other in b]))
        out.append(b.pop(k))
    return np.array(out)


def linear_trajectory(lams: torch.Tensor, numel: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real trajectory x(t) = Σ_j λ_j^t v_j (complex λ in conjugate pairs); returns (Z, fixed point)."""
    g = torch.Generator().manual_seed(seed)
    parts, fixed = [], None
    t = torch.arange(steps, dtype=F64)[:, None]
    for lam in lams:
        if lam.imag < 0:
            continue
        v = torch.randn(numel, dtype=F64, generator=g)
        if lam.imag == 0:
            parts.append(lam.real**t * v)
            if lam.real == 1:
                fixed = v
        else:
            u = torch.randn(numel, dtype=F64, generator=g)
            pw = lam.to(torch.complex128) ** t
            parts.append(pw.real * v + pw.imag * u)
    return sum(parts), fixed


def quadratic_run(numel: int, curvatures: list[float], lr: float, momentum: float, steps: int, seed: int = 0):
    """Heavy-ball GD (PyTorch convention) on ½(θ−θ*)ᵀH(θ−θ*): returns snapshots, true gradients, θ*."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(numel, numel, dtype=F64, generator=g))
    h = torch.zeros(numel, dtype=F64)
    h[: len(curvatures)] = torch.tensor(curvatures, dtype=F64)  # one excited direction per curvature
    hess = q @ torch.diag(h) @ q.T
    star = torch.randn(numel, dtype=F64, generator=g)
    theta = star + q[:, : len(curvatures)] @ torch.randn(len(curvatures), dtype=F64, generator=g)
    buf = torch.zeros(numel, dtype=F64)
    snaps, grads = [], []
    for _ in range(steps):
        grad = hess @ (theta - star)
        snaps.append(theta.clone())
        grads.append(grad)
        buf = momentum * buf + grad
        theta = theta - lr * buf
    return torch.stack(snaps), torch.stack(grads), star


# ----------------------------------------------------------------------------------------------------- tests
def test_linear_system_recovers_eigenvalues_fixed_point_and_amplitudes():
    lams = torch.tensor([1.0, 0.97, 0.9, 0.8 + 0.15j, 0.8 - 0.15j, 0.6, -0.5], dtype=torch.complex128)
    z, fixed = linear_trajectory(lams, numel=60, steps=20)
    fit = fit_dmd(z)
    assert fit.rank == len(lams)
    got = match(lams.numpy(), fit.eigenvalues.numpy())
    assert np.max(np.abs(got - lams.numpy())) < 1e-8
    assert abs(fit.chosen_eigenvalue - 1) < 1e-8
    fp = fit.fixed_point(F64)
    assert float((fp - fixed).norm() / fixed.norm()) < 1e-8
    assert fit.imag_ratio < 1e-8
    d = fit.diagnostics
    assert d["reconstruction_error"] < 1e-10 and d["residual"] < 1e-8
    assert d["fixed_point_distance"] == pytest.approx(float((fixed - z[-1]).norm() / z[-1].norm()), rel=1e-6)
    assert d["spectral_radius"] == pytest.approx(1.0) and d["unstable_modes"] == 0
    # amplitudes from Gram quantities == dense least squares against the materialised modes
    phi = fit.modes(list(range(fit.rank)))
    dense_b = torch.linalg.lstsq(phi, z[0].to(torch.complex128)[:, None]).solution[:, 0]
    assert float((dense_b - fit.amplitudes).abs().max() / fit.amplitudes.abs().max()) < 1e-9
    # and the state reconstruction from modes is the trajectory
    state_13 = fit.combine(fit.eigenvalues**13 * fit.amplitudes)
    assert float((state_13 - z[13]).norm() / z[13].norm()) < 1e-9
    # mode j satisfies the eigen relation along the trajectory: Σ λ^t b ϕ reproduces z, checked above;
    # the fixed-point mode equals one pass of mode() scaled by its amplitude
    j = fit.closest_index
    assert torch.allclose((fit.mode(j) * fit.amplitudes[j]).real, fp, rtol=0, atol=1e-10)


def test_reconstruction_error_matches_dense_least_squares_and_residual_matches_dense_evaluation():
    g = torch.Generator().manual_seed(3)
    z = torch.cumsum(torch.randn(12, 500, dtype=F64, generator=g) * 0.1, 0) + 2.0
    fit = fit_dmd(z, rank_tol=0.2)
    assert fit.rank < 11 and fit.summary()["dropped_tol"] == 11 - fit.rank
    phi = fit.modes(list(range(fit.rank)))
    t = torch.arange(12, dtype=F64)[:, None]
    vander = fit.eigenvalues[None, :] ** t  # (T, r)
    # best amplitudes over the whole window: one least-squares problem over every (step, parameter) entry
    design = (vander[:, None, :] * phi[None, :, :]).reshape(-1, fit.rank)
    b = torch.linalg.lstsq(design, z.to(torch.complex128).reshape(-1, 1)).solution[:, 0]
    dense = float(((vander * b[None, :]) @ phi.T - z).norm() / z.norm())
    assert dense > 1e-6  # truncation leaves a visible error, so the comparison means something
    assert fit.diagnostics["reconstruction_error"] == pytest.approx(dense, rel=1e-6)
    # the chosen eigenpair's residual, from the materialised snapshot matrices
    x, y = z[:-1].T.to(torch.complex128), z[1:].T.to(torch.complex128)
    u, sig, vh = torch.linalg.svd(x, full_matrices=False)
    keep = sig >= 0.2 * sig[0]
    u, sig, v = u[:, keep], sig[keep], vh[keep].conj().T
    lam, w = torch.linalg.eig(u.conj().T @ y @ v / sig)
    j = int(torch.argmin((lam - 1).abs()))
    c = (v / sig) @ w[:, j]
    expected = float((y @ c - lam[j] * (x @ c)).norm() / (x @ c).norm())
    assert fit.diagnostics["residual"] == pytest.approx(expected, rel=1e-6)


def test_diagnostics_stay_bounded_when_unstable_modes_would_explode():
    """A window with a slowly growing direction: free-run powers of |λ| > 1 over many steps blow up, ours do not."""
    g = torch.Generator().manual_seed(0)
    steps, numel = 400, 300
    base = torch.randn(numel, dtype=F64, generator=g)
    noise = torch.randn(steps, numel, dtype=F64, generator=g) * 1e-3
    z = base + torch.cumsum(noise, 0) * 0.05 + 1e-4 * torch.randn(steps, numel, dtype=F64, generator=g)
    fit = fit_dmd(z)
    d = fit.diagnostics
    assert d["unstable_modes"] >= 1 and d["spectral_radius"] > 1
    assert 1.06 ** (steps - 1) > 1e9  # what the old free-run error would have raised to a power
    assert 0 <= d["reconstruction_error"] <= 1
    assert 0 <= d["amplitude_share"] <= 1
    assert d["residual"] < 10 and d["fixed_point_distance"] < 1
    json.dumps(fit.summary(), allow_nan=False)  # finite numbers only


def test_gradient_descent_on_quadratic_gradient_is_exact():
    curv = [0.5, 1.0, 2.0, 3.5, 5.0, 7.0]
    z, grads, star = quadratic_run(numel=40, curvatures=curv, lr=0.1, momentum=0.0, steps=16)
    fit = fit_dmd(z)
    expected = sorted([1.0] + [1 - 0.1 * h for h in curv])
    assert np.allclose(sorted(fit.eigenvalues.real.numpy()), expected, atol=1e-9)
    for t in (0, 7, 15):
        ghat = fit.gradient(t, lr=0.1, dtype=F64)
        assert float((ghat - grads[t]).norm() / grads[t].norm()) < 1e-6
    assert float((fit.fixed_point(F64) - star).norm() / star.norm()) < 1e-9


def noisy_descent(numel: int, steps: int, lr: float, noise: float, excited: int = 20, seed: int = 0):
    """SGD-like descent on a quadratic: the true gradient plus isotropic noise of ``noise`` times its size."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(numel, numel, dtype=F64, generator=g))
    h = torch.zeros(numel, dtype=F64)
    h[:excited] = torch.linspace(0.2, 8, excited, dtype=F64)
    hess = q @ torch.diag(h) @ q.T
    star = torch.randn(numel, dtype=F64, generator=g)
    theta = star + q[:, :excited] @ torch.randn(excited, dtype=F64, generator=g) * 3
    snaps, grads = [], []
    for _ in range(steps):
        grad = hess @ (theta - star)
        snaps.append(theta.clone())
        grads.append(grad)
        kick = torch.randn(numel, dtype=F64, generator=g) * grad.norm() / numel**0.5
        theta = theta - lr * (grad + noise * kick)
    return torch.stack(snaps), torch.stack(grads)


def test_gradient_at_the_window_end_survives_unstable_noise_modes():
    """Noisy steps give an untruncated fit |λ| > 1 modes; ĝ from amplitudes at t stays the gradient, λ^t b does not."""
    z, grads = noisy_descent(numel=600, steps=400, lr=0.05, noise=0.3)
    fit = fit_dmd(z)
    t = z.shape[0] - 1
    truth = grads[t]
    assert fit.diagnostics["unstable_modes"] >= 1

    def cosine_and_ratio(g: torch.Tensor) -> tuple[float, float]:
        return float(g @ truth / (g.norm() * truth.norm())), float(g.norm() / truth.norm())

    cos, ratio = cosine_and_ratio(fit.gradient(t, lr=0.05, dtype=F64))
    assert cos > 0.8 and 0.5 < ratio < 2
    lam, b = fit.eigenvalues, fit.amplitudes
    free_run = fit.combine(-(lam - 1) * lam**t * b / 0.05)  # koopsweep < 0.2: amplitudes of θ(t0) carried to t
    old_cos, old_ratio = cosine_and_ratio(free_run)
    assert old_cos < 0.3 and old_ratio > 10


def test_heavy_ball_gradient_exact_with_one_delay_and_worse_without(capsys):
    lr, beta = 0.05, 0.9
    z, grads, _ = quadratic_run(numel=40, curvatures=[0.3, 1.0, 2.0, 4.0, 8.0], lr=lr, momentum=beta, steps=30)
    t = 25
    truth = grads[t]

    def err(fit, momentum):
        return float((fit.gradient(t, lr, momentum, dtype=F64) - truth).norm() / truth.norm())

    delayed = fit_dmd(z, delays=1)
    plain = fit_dmd(z, delays=0)
    e_delay = err(delayed, beta)
    e_plain = err(plain, beta)
    e_uncorrected = err(delayed, 0.0)
    with capsys.disabled():
        print(
            f"\nheavy ball KGP relative error: delays=1 {e_delay:.2e}, delays=0 {e_plain:.2e}, "
            f"delays=1 without momentum correction {e_uncorrected:.2e}"
        )
    assert delayed.rank == 11  # two eigenvalues per curvature plus the fixed point
    assert e_delay < 1e-6
    assert e_plain > 1e-2 and e_plain > 1e4 * e_delay
    assert e_uncorrected > 0.5


def test_kmp_equals_gmp_on_a_converged_trajectory():
    g = torch.Generator().manual_seed(1)
    numel, lr = 400, 0.1
    h = torch.linspace(2.0, 9.0, numel, dtype=F64)
    star = torch.randn(numel, dtype=F64, generator=g)
    theta = star + torch.randn(numel, dtype=F64, generator=g)
    snaps = []
    for step in range(160):
        theta = theta - lr * h * (theta - star)
        if step >= 120:
            snaps.append(theta.clone())
    z = torch.stack(snaps).float()  # stored like the recorder stores it
    fit = fit_dmd(z)
    k = int(0.7 * numel)
    kmp = set(torch.sort(fit.fixed_point().abs(), stable=True).indices[:k].tolist())
    gmp = set(torch.sort(z[-1].abs(), stable=True).indices[:k].tolist())
    assert kmp == gmp
    assert abs(fit.chosen_eigenvalue - 1) < 1e-4


def test_agrees_with_dense_svd_exact_dmd_on_random_tall_matrices():
    rng = np.random.default_rng(7)
    for numel, count in ((3000, 25), (800, 40)):
        z = rng.standard_normal((count, numel)) + 0.3
        fit = fit_dmd(torch.from_numpy(z))
        lam, phi, b = dense_exact_dmd(z)
        assert fit.rank == len(lam)
        got = match(lam, fit.eigenvalues.numpy())
        assert np.max(np.abs(got - lam)) < 1e-9
        j = int(np.argmin(np.abs(lam - 1)))
        assert abs(fit.chosen_eigenvalue - lam[j]) < 1e-9
        ours = fit.mode(fit.closest_index).numpy()
        ref = phi[:, j]
        k = int(np.argmax(np.abs(ref)))
        ours, ref = ours / ours[k], ref / ref[k]  # modes are defined up to a complex scale
        assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-8
        # the amplitude-scaled mode is scale free
        scaled = fit.mode(fit.closest_index).numpy() * fit.amplitudes[fit.closest_index].item()
        assert np.linalg.norm(scaled - phi[:, j] * b[j]) / np.linalg.norm(phi[:, j] * b[j]) < 1e-8


def test_pydmd_oracle_on_a_noisy_training_like_trajectory():
    pydmd = pytest.importorskip("pydmd")
    g = torch.Generator().manual_seed(5)
    numel, count = 2000, 30
    star = torch.randn(numel, dtype=F64, generator=g) * 0.1
    rate = 1 - torch.rand(numel, dtype=F64, generator=g) * 0.2
    e = torch.randn(numel, dtype=F64, generator=g) * 0.05
    rows = []
    for _ in range(count):
        rows.append(star + e)
        e = rate * e + 1e-3 * torch.randn(numel, dtype=F64, generator=g)
    z = torch.stack(rows)
    fit = fit_dmd(z)
    ref = pydmd.DMD(svd_rank=-1, exact=True).fit(z.numpy().T)
    got = match(ref.eigs, fit.eigenvalues.numpy())
    assert fit.rank == len(ref.eigs) == count - 1
    assert np.max(np.abs(got - ref.eigs)) < 1e-8
    j = int(np.argmin(np.abs(ref.eigs - 1)))
    ref_fp = (ref.modes[:, j] * ref.amplitudes[j]).real
    ours = fit.fixed_point(F64).numpy()
    assert np.linalg.norm(ours - ref_fp) / np.linalg.norm(ref_fp) < 1e-7


def test_increment_gram_keeps_precision_where_the_raw_gram_loses_it():
    """Steps of 1e-9·‖θ‖: the raw Gram route (eigh of XᵀX) cannot see them, the increment route matches SVD."""
    lams = torch.tensor([1.0, 0.9, 0.7, 0.5], dtype=torch.complex128)
    z, _ = linear_trajectory(lams, numel=300, steps=10, seed=2)
    g = torch.Generator().manual_seed(2)
    big = torch.randn(300, dtype=F64, generator=g) * 1e9
    z = z + big  # θ(t) = big + O(1) transient: relative motion 1e-9
    lam_svd, _, _ = dense_exact_dmd(z.numpy())
    ours = fit_dmd(z)
    assert np.max(np.abs(match(lam_svd, ours.eigenvalues.numpy()) - lam_svd)) < 1e-6
    assert np.max(np.abs(match(lams.numpy(), ours.eigenvalues.numpy()) - lams.numpy())) < 1e-6
    # the raw-Gram method of snapshots on the same data
    gram = (z @ z.T).numpy()
    s2, v = np.linalg.eigh(gram[:-1, :-1])
    keep = s2 > 9 * np.finfo(float).eps * s2.max()
    s, v = np.sqrt(s2[keep]), v[:, keep]
    atilde = (v / s).T @ gram[:-1, 1:] @ (v / s)
    naive = np.linalg.eigvals(atilde)
    naive_err = max(abs(lam - naive[np.argmin(np.abs(naive - lam))]) for lam in lams.numpy())
    assert naive_err > 1e-2  # it misses the transient spectrum


def test_delay_gram_equals_gram_of_embedded_states():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(9, 50, dtype=F64, generator=g)
    d = 2
    emb = torch.cat([z[d - k : 9 - k] for k in range(d + 1)], dim=1)
    assert torch.allclose(delay_gram(z @ z.T, d), emb @ emb.T, rtol=1e-13, atol=1e-12)
    assert torch.allclose(raw_gram(increment_gram(z)), z @ z.T, rtol=1e-13, atol=1e-12)
    # the delayed fit equals a plain fit of the explicitly embedded trajectory
    lam_emb = fit_dmd(emb).eigenvalues.numpy()
    fit = fit_dmd(z, delays=d)
    assert np.max(np.abs(match(lam_emb, fit.eigenvalues.numpy()) - lam_emb)) < 1e-9
    first = fit_dmd(emb).fixed_point(F64)[:50]
    assert torch.allclose(fit.fixed_point(F64), first, atol=1e-9)


def test_repeated_snapshots_drop_null_directions_safely(caplog):
    lams = torch.tensor([1.0, 0.8, 0.5], dtype=torch.complex128)
    z, _ = linear_trajectory(lams, numel=30, steps=8)
    z = torch.cat([z[:4], z[3:4], z[4:]])  # a repeated snapshot (a skipped step): zero increment
    with caplog.at_level(logging.WARNING, logger="koopsweep.koopman"):
        fit = fit_dmd(z)
    assert "numerically null" in caplog.text
    assert fit.summary()["dropped_null"] >= 1
    assert torch.isfinite(fit.fixed_point()).all()
    assert torch.isfinite(fit.eigenvalues).all()


def test_float32_input_summary_and_imag_ratio():
    lams = torch.tensor([1.0, 0.95, 0.7 + 0.2j, 0.7 - 0.2j], dtype=torch.complex128)
    z, fixed = linear_trajectory(lams, numel=200, steps=12)
    fit = fit_dmd(z.float())
    fp = fit.fixed_point()
    assert fp.dtype == torch.float32 and fp.shape == (200,)
    assert float((fp.double() - fixed).norm() / fixed.norm()) < 1e-5
    summary = json.loads(json.dumps(fit.summary()))
    assert summary["rank"] == fit.rank and len(summary["spectrum"]["re"]) == fit.rank
    assert summary["eigenvalue"]["re"] == pytest.approx(1.0, abs=1e-4)
    assert summary["imag_ratio"] < 1e-3 and summary["delays"] == 0
    # a chosen mode that is genuinely complex is reported as such
    spiral, _ = linear_trajectory(torch.tensor([0.99 + 0.05j, 0.99 - 0.05j, 0.3]), numel=50, steps=10)
    assert fit_dmd(spiral).imag_ratio > 1e-2


def test_a_constant_trajectory_is_its_own_fixed_point():
    theta = torch.randn(10, dtype=F64)
    fit = fit_dmd(theta.expand(6, 10).clone())
    assert fit.rank == 1 and abs(fit.chosen_eigenvalue - 1) < 1e-12
    assert torch.allclose(fit.fixed_point(F64), theta, atol=1e-12)
    assert torch.allclose(fit.gradient(3, lr=0.1, dtype=F64), torch.zeros(10, dtype=F64), atol=1e-12)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(KoopsweepError, match="NaN"):
        fit_dmd(torch.tensor([[0.0, 1.0], [float("nan"), 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 4 snapshots"):
        fit_dmd(torch.randn(3, 10), delays=2)
    with pytest.raises(KoopsweepError, match="all zeros"):
        fit_dmd(torch.zeros(5, 10))
    with pytest.raises(ValueError, match="rank_tol"):
        fit_dmd(torch.randn(5, 10), rank_tol=1.5)


def test_a_non_finite_fit_vector_is_one_line_not_scores():
    from koopsweep.errors import KoopsweepError
    from koopsweep.koopman.dmd import require_finite

    fine = torch.ones(3, dtype=F64)
    assert require_finite(fine, "ĝ") is fine
    with pytest.raises(KoopsweepError, match="non-finite ĝ") as info:
        require_finite(torch.tensor([1.0, float("inf")]), "ĝ")
    assert "\n" not in str(info.value)


def test_a_drifting_trajectory_splits_lambda_1_and_the_cluster_recovers_its_slow_part() -> None:
    """θ(t) = a + b·t + c·μ^t: a Jordan block at 1 (the drift) that exact DMD splits into 1 ± δ with large
    amplitudes of opposite sign. The nearest mode alone is then far from the slow part a + b·T; the modes within
    ``cluster_radius`` of 1 together give it back (what KMP scores with koopman.cluster_radius > 0)."""
    generator = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(400, generator=generator, dtype=torch.float64) for _ in range(3))
    steps = torch.arange(30, dtype=torch.float64)[:, None]
    z = a + 1e-3 * b * steps + c * 0.6**steps
    fit = fit_dmd(z)
    near = sorted(abs(complex(lam) - 1) for lam in fit.eigenvalues)
    assert near[0] < 1e-3 and near[1] < 1e-3 and near[2] > 0.3  # two eigenvalues at 1 ± δ, the transient at 0.6
    slow = a + 1e-3 * b * 29
    nearest = fit.combine(fit.fixed_point_weights()).real
    cluster = fit.combine(fit.fixed_point_weights(cluster_radius=1e-2)).real
    assert len(fit.cluster_indices(1e-2)) == 2
    assert torch.linalg.norm(cluster - slow) / torch.linalg.norm(slow) < 1e-6
    assert torch.linalg.norm(nearest - slow) / torch.linalg.norm(slow) > 0.1
    assert fit.diagnostics["share_near_one"] < 0.9  # the split is seen from the fit alone


def test_a_split_drift_is_warned_about_unless_the_cluster_is_used(caplog) -> None:
    from koopsweep.koopman.vectors import warn_if_split

    generator = torch.Generator().manual_seed(3)
    a, b, c = (torch.randn(400, generator=generator, dtype=torch.float64) for _ in range(3))
    steps = torch.arange(30, dtype=torch.float64)[:, None]
    drifting = fit_dmd(a + 1e-3 * b * steps + c * 0.6**steps)
    settling = fit_dmd(a + c * 0.6**steps)  # one mode at 1, nothing else near it
    assert settling.diagnostics["share_near_one"] == pytest.approx(1.0)
    with caplog.at_level("WARNING", logger="koopsweep.koopman.vectors"):
        assert warn_if_split(drifting, cluster_radius=0.0)
        assert not warn_if_split(drifting, cluster_radius=1e-3)
        assert not warn_if_split(settling, cluster_radius=0.0)
    (record,) = [r for r in caplog.records if r.name == "koopsweep.koopman.vectors"]
    assert "koopman.cluster_radius=0.001 takes them all" in record.getMessage()
