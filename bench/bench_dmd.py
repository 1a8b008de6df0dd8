"""Benchmark the Koopman fit at pruning time: koopsweep's method of snapshots vs dense-SVD exact DMD vs PyDMD.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_dmd.py                      # MnistNet size: 431,080 × 469
    .venv/bin/python bench/bench_dmd.py --numel 20000 --snapshots 100          # a quick run
    .venv/bin/python bench/bench_dmd.py --source path/to/recorded/window       # a window recorded by training

A synthetic trajectory that resembles training (each coordinate relaxes towards θ* at its own slow rate, with
SGD-like noise) is recorded through SnapshotRecorder, which builds the float64 Gram on the way (its cost is
reported separately: it is paid during training, not at pruning time). Each method then runs in a fresh
subprocess, from the recorded files to the KMP scores |Re(b* ϕ*)|, and reports its wall time and peak resident
memory (VmHWM of the worker; tracemalloc cannot see torch or LAPACK allocations, and ru_maxrss
is inherited across fork+exec):

  ours   SnapshotWindow.open (checksums verified) + fit_dmd (small dense algebra + one pass over the chunks)
  svd    textbook exact DMD in numpy float64: SVD of X (no truncation), Ã, eig, all exact modes,
         b = lstsq(Φ, x0), mode nearest 1 — the route of the paper's released code
  pydmd  pydmd.DMD(svd_rank=-1, exact=True)

Then it prints time and memory ratios against the SVD route and the agreement of the KMP masks at --fraction
(share of parameters with the same keep/prune decision, and the overlap of the removed sets).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYOUT = "bench-synthetic"


def rss_mb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process, MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------------ workers
def load_dense(window_dir: Path):
    """All snapshots as a (T, N) float64 numpy array, read straight from the chunk files (no torch)."""
    import numpy as np

    manifest = json.loads((window_dir / "manifest.json").read_text())
    count, numel = manifest["count"], manifest["numel"]
    z = np.empty((count, numel), dtype=np.float64)
    for chunk in manifest["chunks"]:
        path = window_dir / chunk["file"]
        offset = path.stat().st_size - 4 * chunk["rows"] * numel
        rows = np.fromfile(path, dtype="<f4", count=chunk["rows"] * numel, offset=offset)
        z[chunk["start"] : chunk["start"] + chunk["rows"]] = rows.reshape(chunk["rows"], numel)
    return z


def worker(method: str, window_dir: Path, scores_path: Path) -> dict:
    """Run one method from files to KMP scores in this (fresh) process."""
    phases: dict[str, float] = {}
    if method == "ours":
        import torch

        from koopsweep.koopman import SnapshotWindow, fit_dmd

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        base = rss_mb()
        t0 = time.perf_counter()
        window = SnapshotWindow.open(window_dir, None)  # verify="full": every checksum is read
        phases["open+verify"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        fit = fit_dmd(window)
        phases["small-space fit"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        scores = fit.fixed_point().abs().numpy()
        phases["mode pass"] = time.perf_counter() - t2
        lam, rank = fit.chosen_eigenvalue, fit.rank
    else:
        import numpy as np

        if method == "pydmd":
            import pydmd
        base = rss_mb()
        t0 = time.perf_counter()
        z = load_dense(window_dir)
        phases["load"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        if method == "svd":
            x, y = z[:-1].T, z[1:].T
            u, s, vh = np.linalg.svd(x, full_matrices=False)
            phases["svd"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            v_sinv = vh.T / s
            atilde = (u.T @ y) @ v_sinv
            lam_all, w = np.linalg.eig(atilde)
            del u
            phi = (y @ v_sinv) @ w / lam_all
            phases["eig+modes"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            b = np.linalg.lstsq(phi, x[:, 0], rcond=None)[0]
            phases["amplitudes"] = time.perf_counter() - t3
            j = int(np.argmin(np.abs(lam_all - 1)))
            scores = np.abs((phi[:, j] * b[j]).real).astype(np.float32)
        elif method == "pydmd":
            dmd = pydmd.DMD(svd_rank=-1, exact=True).fit(z.T)
            lam_all, j = dmd.eigs, int(np.argmin(np.abs(dmd.eigs - 1)))
            scores = np.abs((dmd.modes[:, j] * dmd.amplitudes[j]).real).astype(np.float32)
            phases["fit"] = time.perf_counter() - t1
        else:
            raise SystemExit(f"unknown method {method!r}")
        lam, rank = complex(lam_all[j]), len(lam_all)
    seconds = time.perf_counter() - t0
    import numpy as np

    np.save(scores_path, scores)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child would report the parent's peak
    peak = rss_mb("VmHWM")
    return {
        "method": method,
        "seconds": seconds,
        "phases": phases,
        "peak_rss_mb": peak,
        "baseline_rss_mb": base,
        "eigenvalue": [lam.real, lam.imag],
        "rank": rank,
    }


# ------------------------------------------------------------------------------------------------- parent
def synthetic(window_dir: Path, numel: int, count: int, seed: int, chunk_size: int) -> dict:
    """Record a slowly converging, noisy trajectory; returns the recorder's timing stats."""
    import torch

    from koopsweep.koopman import SnapshotRecorder

    g = torch.Generator().manual_seed(seed)
    star = torch.randn(numel, generator=g) * 0.05
    rate = 1 - 10 ** (-4.3 + 3.0 * torch.rand(numel, generator=g))  # per-coordinate relaxation in (0.95, 0.99995)
    err = torch.randn(numel, generator=g) * 0.02
    noise = 2e-4
    rec = SnapshotRecorder(window_dir, LAYOUT, numel, chunk_size=chunk_size)
    tic = time.perf_counter()
    for _ in range(count):
        rec.append(star + err)
        err = rate * err + noise * torch.randn(numel, generator=g)
    rec.close()
    return {"record_seconds": time.perf_counter() - tic, **rec.stats}


def rerecord(source: Path, window_dir: Path, chunk_size: int) -> dict:
    """Stream an existing window through a fresh recorder to measure the Gram build cost."""
    from koopsweep.koopman import SnapshotRecorder, SnapshotWindow

    src = SnapshotWindow.open(source, None)
    rec = SnapshotRecorder(window_dir, src.layout_hash, src.numel, chunk_size=chunk_size)
    tic = time.perf_counter()
    for _, rows in src.chunks():
        for row in rows:
            rec.append(row)
    rec.close()
    return {"record_seconds": time.perf_counter() - tic, **rec.stats}


def masks_agreement(a, b, fraction: float) -> tuple[float, float]:
    """(share of equal keep/prune decisions, |removed_a ∩ removed_b| / |removed_a|) for exact-k masks."""
    import numpy as np

    k = round(fraction * a.shape[0])
    ra = np.zeros(a.shape[0], dtype=bool)
    rb = np.zeros(a.shape[0], dtype=bool)
    ra[np.argsort(a, kind="stable")[:k]] = True
    rb[np.argsort(b, kind="stable")[:k]] = True
    return float(np.mean(ra == rb)), float((ra & rb).sum() / max(k, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numel", type=int, default=431_080, help="parameters (MnistNet: 431,080)")
    parser.add_argument("--snapshots", type=int, default=469, help="snapshots (one MNIST epoch at batch 128)")
    parser.add_argument("--source", default="synthetic", help="'synthetic' or a recorded window folder")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--methods", default="ours,svd,pydmd")
    parser.add_argument("--fraction", type=float, default=0.9)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where to record (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the recorded window and scores (path printed)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per method")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--window", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scores", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.window), Path(args.scores))))
        return

    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    sys.path.insert(0, str(REPO))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.keep:
        work = Path(tempfile.mkdtemp(prefix="bench_dmd_", dir=args.workdir))
        print(f"working in {work} (kept)")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_dmd_", dir=args.workdir)
        work = Path(tmp.name)
    if args.source == "synthetic":
        window_dir = work / "window"
        build = synthetic(window_dir, args.numel, args.snapshots, args.seed, args.chunk_size)
        what = f"synthetic trajectory {args.snapshots} × {args.numel:,}"
    else:
        window_dir = Path(args.source)
        build = rerecord(window_dir, work / "rerecorded", args.chunk_size)
        what = f"recorded window {window_dir}"
    print(f"{what}; threads {args.threads}; torch {torch.__version__}, numpy {np.__version__}")
    print(
        f"Gram build while recording (paid during training): {build['gram_seconds']:.2f} s float64 matmuls, "
        f"{build['write_seconds']:.2f} s chunk writes, {build['read_seconds']:.2f} s re-reads, "
        f"{build['record_seconds']:.2f} s in total (incl. generating the trajectory for a synthetic source)"
    )

    results = {}
    for method in args.methods.split(","):
        scores = work / f"{method}.npy"
        cmd = [sys.executable, __file__, "--worker", method, "--window", str(window_dir), "--scores", str(scores)]
        load_before = os.getloadavg()[0]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"{method}: timed out after {args.timeout} s")
            continue
        if proc.returncode != 0:
            print(f"{method}: failed (exit {proc.returncode})\n{proc.stderr[-2000:]}")
            continue
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[method]["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        results[method]["scores"] = np.load(scores)

    ref = results.get("svd")
    header = f"{'method':8} {'fit s':>9} {'peak MiB':>9} {'x faster':>9} {'mem/svd':>8} {'agree':>9} {'removed∩':>9}"
    print(f"\n{header}  λ*  phases")
    for method, r in results.items():
        speed = ref["seconds"] / r["seconds"] if ref else float("nan")
        mem = r["peak_rss_mb"] / ref["peak_rss_mb"] if ref else float("nan")
        agree, overlap = masks_agreement(r["scores"], ref["scores"], args.fraction) if ref else (float("nan"),) * 2
        r.update(speedup_vs_svd=speed, memory_vs_svd=mem, mask_agreement=agree, removed_overlap=overlap)
        lam = complex(*r["eigenvalue"])
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        print(
            f"{method:8} {r['seconds']:9.2f} {r['peak_rss_mb']:9.0f} {speed:9.1f} {mem:8.3f} {agree:9.5f} "
            f"{overlap:9.5f}  {lam.real:.6f}{lam.imag:+.6f}i rank {r['rank']}; {phases}; "
            f"RSS after imports {r['baseline_rss_mb']:.0f} MiB; load avg before/after {r['load_avg_1min']}"
        )
    if "ours" in results and "pydmd" in results:
        print(
            f"ours vs pydmd: {results['pydmd']['seconds'] / results['ours']['seconds']:.1f}x faster, "
            f"{results['ours']['peak_rss_mb'] / results['pydmd']['peak_rss_mb']:.3f} of its peak memory"
        )
    if args.json:
        payload = {"setup": {"what": what, "threads": args.threads, "fraction": args.fraction}, "build": build}
        payload["methods"] = {m: {k: v for k, v in r.items() if k != "scores"} for m, r in results.items()}
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
