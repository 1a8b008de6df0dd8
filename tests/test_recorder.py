"""Snapshot recorder and window: Gram round trip, fit equivalence, verification failures, the trainer hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from koopsweep.errors import ArtifactError
from koopsweep.koopman import SnapshotHook, SnapshotRecorder, SnapshotWindow, fit_dmd

torch.set_num_threads(1)
LAYOUT = "abcdef0123456789"


def trajectory(count: int = 23, numel: int = 257, seed: int = 0) -> torch.Tensor:
    """A float32 trajectory converging to a fixed point, with noise (like training)."""
    g = torch.Generator().manual_seed(seed)
    star = torch.randn(numel, generator=g)
    rate = 0.6 + 0.39 * torch.rand(numel, generator=g)
    e = torch.randn(numel, generator=g)
    rows = []
    for _ in range(count):
        rows.append(star + e)
        e = rate * e + 1e-3 * torch.randn(numel, generator=g)
    return torch.stack(rows).float()


def record(
    directory: Path, z: torch.Tensor, chunk_size: int = 5, stats: dict | None = None, **kwargs
) -> SnapshotWindow:
    rec = SnapshotRecorder(directory, LAYOUT, z.shape[1], chunk_size=chunk_size, **kwargs)
    for row in z:
        rec.append(row)
    window = rec.close()
    if stats is not None:
        stats.update(rec.stats)
    return window


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_round_trip_gram_rows_and_fit(tmp_path, cache_bytes):
    z = trajectory()
    stats: dict = {}
    window = record(tmp_path / "w", z, cache_bytes=cache_bytes, stats=stats)
    assert (stats["read_seconds"] > 0) == (cache_bytes == 0)  # without a cache, older chunks come from disk
    assert (window.count, window.numel) == tuple(z.shape)
    z64 = z.double()
    assert torch.allclose(window.gram, z64 @ z64.T, rtol=1e-12, atol=1e-9)
    inc = torch.cat([z64[:1], z64[1:] - z64[:-1]])
    assert torch.allclose(window.increment_gram, inc @ inc.T, rtol=1e-12, atol=1e-12)

    opened = SnapshotWindow.open(tmp_path / "w", LAYOUT)
    assert torch.equal(opened.load(), z)
    assert torch.equal(opened.row(7), z[7]) and torch.equal(opened.row(-1), z[-1]) and torch.equal(opened.last(), z[-1])
    assert torch.equal(opened.increment_gram, window.increment_gram)
    assert [start for start, _ in opened.chunks()] == [0, 5, 10, 15, 20]

    from_window, from_tensor = fit_dmd(opened), fit_dmd(z)
    assert from_window.rank == from_tensor.rank == 22
    nearest = (from_window.eigenvalues[:, None] - from_tensor.eigenvalues[None, :]).abs().min(dim=1).values
    assert float(nearest.max()) < 1e-9
    assert torch.allclose(from_window.fixed_point(torch.float64), from_tensor.fixed_point(torch.float64), atol=1e-9)
    g_w = from_window.gradient(22, lr=0.01, dtype=torch.float64)
    g_t = from_tensor.gradient(22, lr=0.01, dtype=torch.float64)
    assert torch.allclose(g_w, g_t, rtol=1e-7, atol=1e-7 * float(g_t.abs().max()))
    delayed_w, delayed_t = fit_dmd(opened, delays=2), fit_dmd(z, delays=2)
    assert delayed_w.rank == delayed_t.rank
    assert torch.allclose(delayed_w.fixed_point(torch.float64), delayed_t.fixed_point(torch.float64), atol=1e-8)
    s_w, s_t = from_window.summary(), from_tensor.summary()
    assert s_w.keys() == s_t.keys() and s_w["rank"] == s_t["rank"]
    for key in ("reconstruction_error", "residual", "fixed_point_distance", "amplitude_share"):
        assert s_w[key] == pytest.approx(s_t[key], rel=1e-6)


def test_files_are_float32_with_headers_and_no_temporaries(tmp_path):
    z = trajectory(count=7, numel=33)
    record(tmp_path / "w", z.half().float(), chunk_size=3)  # whatever came in, float32 goes out
    files = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert files == ["chunk_00000.bin", "chunk_00001.bin", "chunk_00002.bin", "gram.bin", "manifest.json"]
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["dtype"] == "float32" and manifest["count"] == 7 and manifest["layout_hash"] == LAYOUT
    assert [c["rows"] for c in manifest["chunks"]] == [3, 3, 1]
    for c in manifest["chunks"]:
        size = (tmp_path / "w" / c["file"]).stat().st_size
        assert size == c["bytes"] and (size - 4 * 33 * c["rows"]) % 64 == 0  # aligned float32 data


def test_appending_other_dtypes_and_shapes(tmp_path):
    rec = SnapshotRecorder(tmp_path / "w", LAYOUT, numel=12, chunk_size=4)
    rec.append(torch.arange(12, dtype=torch.float64).reshape(3, 4))
    rec.append(torch.ones(12, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="13 values"):
        rec.append(torch.ones(13))
    window = rec.close()
    assert window.load().dtype == torch.float32 and window.count == 2
    with pytest.raises(RuntimeError, match="closed"):
        rec.append(torch.ones(12))


def test_wrong_layout_hash_is_rejected(tmp_path):
    record(tmp_path / "w", trajectory(count=6, numel=20))
    with pytest.raises(ArtifactError, match="recorded for parameter layout abcdef0123456789, expected ffff"):
        SnapshotWindow.open(tmp_path / "w", "ffff")


def test_truncated_chunk_is_rejected(tmp_path):
    record(tmp_path / "w", trajectory(count=12, numel=20))
    path = tmp_path / "w" / "chunk_00001.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"chunk_00001.bin is truncated .*record the window again"):
        SnapshotWindow.open(tmp_path / "w", LAYOUT)


@pytest.mark.parametrize("verify", ["full", "lazy"])
def test_corrupt_chunk_is_rejected(tmp_path, verify):
    record(tmp_path / "w", trajectory(count=12, numel=20))
    path = tmp_path / "w" / "chunk_00002.bin"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40
    path.write_bytes(bytes(data))
    if verify == "full":
        with pytest.raises(ArtifactError, match="chunk_00002.bin is corrupt"):
            SnapshotWindow.open(tmp_path / "w", LAYOUT)
    else:
        window = SnapshotWindow.open(tmp_path / "w", LAYOUT, verify="lazy")
        assert torch.isfinite(window.row(0)).all()  # intact chunks stay readable
        with pytest.raises(ArtifactError, match="checksum mismatch"):
            fit_dmd(window).fixed_point()


def test_unfinished_or_damaged_window_is_rejected(tmp_path):
    rec = SnapshotRecorder(tmp_path / "w", LAYOUT, numel=8, chunk_size=2)
    for _ in range(5):
        rec.append(torch.randn(8))
    with pytest.raises(ArtifactError, match="no manifest.json"):  # crashed before close()
        SnapshotWindow.open(tmp_path / "w", LAYOUT)
    rec.close()
    gram = tmp_path / "w" / "gram.bin"
    gram.write_bytes(gram.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="gram.bin is truncated or corrupt"):
        SnapshotWindow.open(tmp_path / "w", LAYOUT)
    # a new recording in the same folder removes the stale one first
    window = record(tmp_path / "w", trajectory(count=4, numel=8), chunk_size=3)
    assert SnapshotWindow.open(tmp_path / "w", LAYOUT).count == window.count == 4
    (tmp_path / "w" / "chunk_00001.bin").unlink()
    with pytest.raises(ArtifactError, match="chunk_00001.bin is missing"):
        SnapshotWindow.open(tmp_path / "w", LAYOUT)


def test_hook_records_the_window_at_its_stride(tmp_path):
    rec = SnapshotRecorder(tmp_path / "w", LAYOUT, numel=3, chunk_size=4)
    hook = SnapshotHook(rec, start=10, end=20, stride=3)
    calls: list[int] = []

    def vector_fn(it: int):
        def fn() -> torch.Tensor:
            calls.append(it)
            return torch.full((3,), float(it))

        return fn

    hook.maybe_record(10, vector_fn(10))  # once at the window start
    for it in range(10, 25):  # then after every optimizer step
        hook.maybe_record(it, vector_fn(it))
    assert calls == [10, 13, 16, 19]  # θ is only computed when it is recorded; the repeat of 10 is skipped
    assert hook.expected_count == 4 and hook.complete
    window = hook.close()
    assert window.load()[:, 0].tolist() == [10.0, 13.0, 16.0, 19.0]
    with pytest.raises(RuntimeError, match="went back"):
        hook.maybe_record(5, vector_fn(5))
    with pytest.raises(ValueError):
        SnapshotHook(rec, start=5, end=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_recorder_and_fit_match_the_cpu(tmp_path):
    z = trajectory(count=20, numel=5000)
    cpu = fit_dmd(z)
    rec = SnapshotRecorder(tmp_path / "w", LAYOUT, z.shape[1], chunk_size=6, device="cuda")
    for row in z.cuda():
        rec.append(row)
    window = rec.close()
    assert torch.allclose(window.increment_gram, record(tmp_path / "c", z).increment_gram, rtol=1e-10, atol=1e-10)
    for fit in (fit_dmd(z.cuda()), fit_dmd(window, device="cuda")):
        fp = fit.fixed_point(torch.float64)
        assert fp.is_cuda
        assert torch.allclose(fp.cpu(), cpu.fixed_point(torch.float64), atol=1e-8)
        nearest = (fit.eigenvalues[:, None] - cpu.eigenvalues[None, :]).abs().min(dim=1).values
        assert float(nearest.max()) < 1e-8 and fit.rank == cpu.rank


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kgp_matches_autograd_for_a_model_trained_with_torch_sgd(tmp_path, momentum):
    """End to end: torch.optim.SGD on a least-squares nn.Linear (a quadratic loss), recorded through the hook.

    Confirms the heavy-ball convention of KGP is PyTorch's (v ← βv + g, θ ← θ − ηv). Snapshots are float32, so
    exactness holds to float32 rounding of the steps.
    """
    from torch import nn

    from koopsweep.prune.paramspace import ParamSpace

    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    x, y = torch.randn(64, 6), torch.randn(64, 2)
    space = ParamSpace.from_model(model, kinds=("weight", "bias"))
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    hook = SnapshotHook(SnapshotRecorder(tmp_path / "w", space.layout_hash, space.numel, chunk_size=8), 5, 45)

    def loss() -> torch.Tensor:
        return nn.functional.mse_loss(model(x), y)

    hook.maybe_record(0, lambda: space.flatten(model))
    for it in range(1, 46):
        opt.zero_grad()
        loss().backward()
        opt.step()
        hook.maybe_record(it, lambda: space.flatten(model))
    hook.close()
    window = SnapshotWindow.open(tmp_path / "w", space.layout_hash)  # as the pruning step would
    opt.zero_grad()
    loss().backward()
    true = torch.cat([t.grad.reshape(-1) for t in space.tensors(model)])

    def err(delays: int) -> float:
        ghat = fit_dmd(window, delays=delays).gradient(window.count - 1, lr, momentum)
        return float((ghat - true).norm() / true.norm())

    assert window.count == 41
    if momentum:
        assert err(1) < 1e-4 and err(0) > 0.5
    else:
        assert err(0) < 1e-4


# -- in memory ---------------------------------------------------------------------------------------------------
def test_memory_window_has_the_disk_windows_gram_and_fit(tmp_path):
    """The in-memory recorder (one product per chunk) and the disk recorder give the same Gram, fit and masks."""
    from koopsweep.koopman.memory import MemoryRecorder
    from koopsweep.prune.paramspace import ParamSpace
    from koopsweep.prune.select import select_keep

    z = trajectory(count=41, numel=3001)
    disk = record(tmp_path / "w", z, chunk_size=8)
    recorder = MemoryRecorder(LAYOUT, z.shape[1], capacity=z.shape[0], chunk_size=8)
    for row in z:
        recorder.append(row)
    memory = recorder.close()
    assert memory.count == 41 and memory.numel == 3001
    assert not any(p.name.startswith("chunk") for p in tmp_path.iterdir())  # nothing written besides the disk one
    assert torch.allclose(memory.increment_gram, disk.increment_gram, rtol=1e-13, atol=1e-13)
    assert torch.equal(memory.snapshots(), z)  # increments of float32 snapshots are exact in float64
    fit_m, fit_d = fit_dmd(memory), fit_dmd(SnapshotWindow.open(tmp_path / "w", LAYOUT))
    assert fit_m.rank == fit_d.rank and abs(fit_m.chosen_eigenvalue - fit_d.chosen_eigenvalue) < 1e-12
    space = ParamSpace(["w"], [(3001,)])
    for k in (300, 1500, 2900):  # KMP and KGP masks identical at several amounts
        assert torch.equal(
            select_keep(fit_m.fixed_point().abs(), k, space), select_keep(fit_d.fixed_point().abs(), k, space)
        )
        g_m, g_d = fit_m.gradient(40, lr=0.05, momentum=0.9), fit_d.gradient(40, lr=0.05, momentum=0.9)
        assert torch.equal(select_keep((z[-1] * g_m).abs(), k, space), select_keep((z[-1] * g_d).abs(), k, space))


def test_memory_recorder_refuses_more_than_its_capacity():
    from koopsweep.koopman.memory import MemoryRecorder

    recorder = MemoryRecorder(LAYOUT, 5, capacity=2)
    recorder.append(torch.ones(5))
    recorder.append(torch.zeros(5))
    with pytest.raises(RuntimeError, match="sized for 2 snapshots"):
        recorder.append(torch.ones(5))
    with pytest.raises(ValueError, match="has 4 values"):
        MemoryRecorder(LAYOUT, 5, capacity=3).append(torch.ones(4))
