"""Gram matrices of snapshot *increments* and streamed linear combinations of snapshots.

Why increments: the snapshots of a training trajectory are nearly identical, so the raw Gram ZZᵀ is dominated by
‖θ‖² and an eigendecomposition of it resolves nothing below √eps·‖θ‖ (≈1e-8‖θ‖) — often the size of the steps
themselves. koopsweep therefore accumulates, in float64, the Gram H = WWᵀ of the rows

    w_0 = z_0,   w_l = z_l − z_{l−1}  (l ≥ 1),          so that Z = L W with L lower-triangular ones.

The large common part of the trajectory lives only in w_0; the steps w_l are measured directly (a difference of
two float32 numbers is exact in float64), and the raw Gram is available as G = L H Lᵀ (two cumulative sums).
Any combination Σ e_i z_i of snapshots is evaluated as Σ c_l w_l with c the suffix sums of e, which keeps the
float64 accumulation free of the cancellation a direct sum over near-identical snapshots would suffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

BLOCK_BYTES = 32 << 20  # float64 working set per column block of an N-dimensional pass


def column_slices(numel: int, rows: int, block_bytes: int = BLOCK_BYTES) -> Iterator[slice]:
    """Column ranges whose float64 (rows × width) block stays under ``block_bytes``."""
    width = max(1, block_bytes // (8 * max(rows, 1)))
    for start in range(0, numel, width):
        yield slice(start, min(start + width, numel))


def increments(rows: torch.Tensor, prev: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    """float64 rows w_i = z_i − z_{i−1} of a block; its first row subtracts ``prev`` (None at the window start).

    ``out`` (a flat float64 buffer from ``scratch``) avoids fresh allocations per block. The rows are converted
    to float64 first and then subtracted (same-dtype kernels are several times faster than mixed-dtype ones);
    a difference of two float32 numbers is exact in float64.
    """
    n = rows.numel()
    if out is None:
        out = torch.empty(2 * n, dtype=torch.float64, device=rows.device)
    z = out[:n].view(rows.shape).copy_(rows)
    w = out[n : 2 * n].view(rows.shape)
    torch.sub(z[1:], z[:-1], out=w[1:])
    if prev is None:
        w[0] = z[0]
    else:
        torch.sub(z[0], prev.to(device=rows.device, dtype=torch.float64), out=w[0])
    return w


def scratch(rows: int, numel: int, device: torch.device | str, block_bytes: int = BLOCK_BYTES) -> torch.Tensor:
    """A flat float64 buffer for ``increments`` of any column block of at most ``rows`` rows (two blocks' worth)."""
    size = min(max(block_bytes // 8, rows), rows * numel)  # bounds r·width for every r <= rows
    return torch.empty(2 * size, dtype=torch.float64, device=device)


def increment_gram(snapshots: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """H = WWᵀ (float64, on the CPU) of a (T, N) snapshot tensor, built by column blocks (no T×N float64 copy)."""
    if snapshots.ndim != 2:
        raise ValueError(f"snapshots must be (T, N), got shape {tuple(snapshots.shape)}")
    count, numel = snapshots.shape
    dev = torch.device(device) if device is not None else snapshots.device
    gram = torch.zeros(count, count, dtype=torch.float64, device=dev)
    buf = scratch(count, numel, dev)
    for cols in column_slices(numel, count):
        w = increments(snapshots[:, cols].to(dev), None, buf)
        gram.addmm_(w, w.T)
    return gram.cpu()


def raw_gram(inc_gram: torch.Tensor) -> torch.Tensor:
    """The raw Gram ZZᵀ = L H Lᵀ from the increment Gram H (L = lower-triangular ones)."""
    return inc_gram.cumsum(0).cumsum(1)


def suffix_sums(coeffs: torch.Tensor) -> torch.Tensor:
    """c_l = Σ_{i ≥ l} e_i (float64): the weights of the increments w_l in Σ_i e_i z_i = Σ_l c_l w_l."""
    return coeffs.to(torch.float64).flip(0).cumsum(0).flip(0)


def combine(
    blocks: Iterable[tuple[int, torch.Tensor]],
    numel: int,
    coeffs: torch.Tensor,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Σ_i coeffs[i, :] z_i for real (T, k) coefficients, streaming contiguous row blocks in order.

    Evaluated in float64 over increments (coefficients turned into suffix sums) in one pass over the snapshots,
    however many columns ``coeffs`` has: a batch of modes costs one read of the window.
    """
    if coeffs.dtype.is_complex:
        raise ValueError("combine takes real coefficients; split complex ones into real and imaginary parts")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    suffix = suffix_sums(coeffs).to(dev)
    out = torch.zeros(numel, coeffs.shape[1], dtype=torch.float64, device=dev)
    prev: torch.Tensor | None = None
    expected = 0
    buf: torch.Tensor | None = None
    buf_rows = 0
    for start, rows in blocks:
        if start != expected:
            raise ValueError(f"row blocks must be contiguous and in order: expected row {expected}, got {start}")
        rows = rows.to(dev)
        c = suffix[start : start + rows.shape[0]]
        if buf is None or rows.shape[0] > buf_rows:
            buf, buf_rows = scratch(rows.shape[0], numel, dev), rows.shape[0]
        for cols in column_slices(numel, rows.shape[0]):
            w = increments(rows[:, cols], None if prev is None else prev[cols], buf)
            out[cols] += w.T @ c
        prev = rows[-1]
        expected = start + rows.shape[0]
    if expected != coeffs.shape[0]:
        raise ValueError(f"coefficients cover {coeffs.shape[0]} snapshots but the source holds {expected}")
    return out


def tensor_blocks(snapshots: torch.Tensor, rows: int = 64) -> Iterator[tuple[int, torch.Tensor]]:
    """Row blocks of an in-memory (T, N) snapshot tensor, in the form ``combine`` streams."""
    for start in range(0, snapshots.shape[0], rows):
        yield start, snapshots[start : start + rows]
