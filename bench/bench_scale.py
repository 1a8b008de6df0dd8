"""Benchmark: the Koopman window at scale, on the GPU against the CPU (baseline: the CPU).

A synthetic trajectory like training (every coordinate relaxes towards θ* at its own slow rate, with SGD-like
noise) of --numel parameters × --snapshots snapshots is generated on each device and recorded exactly as a run
records it in memory (koopsweep.koopman.memory.MemoryRecorder: float64 increments, the Gram grown by one product
per 64 snapshots), then fitted (fit_dmd) and turned into θ* and ĝ in one pass — what a KMP/KGP run does at
pruning time. Prints each phase's seconds per device, the ratio CPU / GPU, and whether the two devices' KMP masks
(exact-k at --fraction) agree.

    python bench/bench_scale.py --numel 10000000 --snapshots 1000 --devices cuda cpu   # 80 GB per device
    python bench/bench_scale.py --numel 200000 --snapshots 200 --devices cpu           # a quick check
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from koopsweep.koopman import fit_dmd  # noqa: E402
from koopsweep.koopman.memory import MemoryRecorder  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(device: torch.device, source: torch.device, numel: int, snapshots: int, seed: int, fraction: float) -> dict:
    """Record, fit and evaluate θ* and ĝ on ``device`` (the data generated on ``source``, the same for every
    device); returns seconds per phase and the KMP mask."""
    g = torch.Generator(device=source).manual_seed(seed)
    star = torch.randn(numel, generator=g, device=source)
    rate = 0.95 + 0.04995 * torch.rand(numel, generator=g, device=source)
    error = torch.randn(numel, generator=g, device=source)
    recorder = MemoryRecorder("bench-scale", numel, capacity=snapshots, device=device)
    out: dict = {"generate": 0.0}
    sync(device)
    start = time.perf_counter()
    for _ in range(snapshots):
        tic = time.perf_counter()
        theta = (star + error).to(device)
        error.mul_(rate).add_(torch.randn(numel, generator=g, device=source), alpha=1e-3)
        sync(source)
        sync(device)
        out["generate"] += time.perf_counter() - tic
        recorder.append(theta)
    window = recorder.close()
    sync(device)
    out["record"] = time.perf_counter() - start - out["generate"]
    out["gram"] = recorder.stats["gram_seconds"]
    tic = time.perf_counter()
    fit = fit_dmd(window, device=device)
    sync(device)
    out["fit"] = time.perf_counter() - tic
    tic = time.perf_counter()
    vectors = fit.combine_many([fit.fixed_point_weights(), fit.gradient_weights(snapshots - 1, 0.05, 0.9)])
    sync(device)
    out["vectors"] = time.perf_counter() - tic
    keep = torch.ones(numel, dtype=torch.bool)
    k = int(round(fraction * numel))
    keep[torch.sort(vectors[:, 0].abs().float().cpu(), stable=True).indices[:k]] = False
    out.update(keep=keep, eigenvalue=fit.chosen_eigenvalue, rank=fit.rank)
    del window, recorder, vectors, fit
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numel", type=int, default=10_000_000)
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--fraction", type=float, default=0.9)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gib = 8 * args.numel * args.snapshots / 2**30
    print(
        f"{args.numel:,} parameters × {args.snapshots} snapshots: {gib:.1f} GiB of float64 increments per device;"
        f" CPU threads {torch.get_num_threads()}"
    )
    results = {}
    source = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the same data for every device
    for name in args.devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(f"{name}: no CUDA device, skipped")
            continue
        results[name] = run(device, source, args.numel, args.snapshots, 0, args.fraction)
        r = results[name]
        print(
            f"{name:>5}: record {r['record']:7.2f} s (Gram {r['gram']:6.2f} s), fit {r['fit']:6.2f} s, "
            f"θ* and ĝ {r['vectors']:6.2f} s; rank {r['rank']}, λ* = {r['eigenvalue']:.9f} "
            f"(generating the data: {r['generate']:.1f} s, not counted)",
            flush=True,
        )
    if "cpu" in results and len(results) > 1:
        base = results["cpu"]
        for name, r in results.items():
            if name == "cpu":
                continue
            total_cpu = base["record"] + base["fit"] + base["vectors"]
            total = r["record"] + r["fit"] + r["vectors"]
            agree = float((r["keep"] == base["keep"]).float().mean())
            print(
                f"cpu / {name}: record {base['record'] / r['record']:.1f}x, fit {base['fit'] / r['fit']:.1f}x, "
                f"θ* and ĝ {base['vectors'] / r['vectors']:.1f}x, all {total_cpu / total:.1f}x; KMP masks at "
                f"{args.fraction:g} agree on {100 * agree:.4f} % of parameters "
                f"(λ* differs by {abs(r['eigenvalue'] - base['eigenvalue']):.1e})"
            )
    if not math.isfinite(sum(r["record"] for r in results.values())):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
