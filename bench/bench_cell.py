"""Benchmark: what one reused grid cell costs beyond its own fine-tuning, as a W&B agent or SLURM task runs it.

A cell is one `koopsweep` process: start, compose, load MNIST and the trunk state at t, prune, fine-tune one epoch,
evaluate, write results. Its trunk (MnistNet on MNIST, one dense epoch) is trained once beforehand; every measured
cell reuses it (GMP at a new fraction each time). The overhead is the process's wall time minus its fine-tuning
time (`time/finetune_s`, which holds the fine-tuning steps and their period evaluations). Several source trees can
be measured side by side in one run, alternating, e.g. the code before a change against the code after it:

    git worktree add /tmp/before <commit>
    python bench/bench_cell.py --tree before=/tmp/before --tree after=. --repeats 3

Baseline for the ratio: the fine-tuning time of the same cell. Prints per tree the median of each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cell(tree: Path, root: Path, data_dir: str, threads: int, fraction: float, out: str, device: str = "cpu") -> dict:
    """Run one cell in a fresh process from ``tree``; return its wall time and its own timings."""
    args = [
        sys.executable,
        "-m",
        "koopsweep",
        "model=mnistnet",
        "dataset=mnist",
        f"paths.data_dir={data_dir}",
        "dataset.source.download=false",
        "schedule.train=1ep",
        "schedule.finetune=1ep",
        "pruner=gmp",
        f"pruner.fraction={fraction}",
        f"threads={threads}",
        "logger=none",
        "progress=false",
        f"device={device}",
        f"hydra.run.dir={root / 'runs' / out}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH", "")])),  # tree first
        "KOOPSWEEP_ROOT": str(root),
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": str(threads),
    }
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cell failed in {tree}:\n{proc.stderr[-3000:]}")
    metrics = json.loads((root / "runs" / out / "results.json").read_text())["metrics"]
    return {
        "wall": wall,
        "finetune": metrics["time/finetune_s"],
        "inside": metrics["time/total_s"],
        "acc": metrics["final/test_acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a source tree to measure (repeatable; default: this checkout)",
    )
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="the cells' device: cpu or cuda")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(REPO)}
    measured: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tree in trees.items():  # one trunk per tree (the store layout may differ between versions)
            root = Path(tmp) / name
            root.mkdir()
            cell(Path(tree).resolve(), root, args.data_dir, args.threads, 0.5, "trunk", args.device)
        for r in range(args.repeats):
            order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                got = cell(
                    Path(tree).resolve(),
                    Path(tmp) / name,
                    args.data_dir,
                    args.threads,
                    0.6 + 0.05 * r,
                    f"cell{r}",
                    args.device,
                )
                measured[name].append(got)
                print(
                    f"  round {r + 1} {name}: wall {got['wall']:.1f} s, fine-tuning {got['finetune']:.1f} s", flush=True
                )
    print(
        f"\nreused GMP cell, MnistNet on MNIST, 1 epoch of fine-tuning, {args.device}, {args.threads} threads, "
        f"median of {args.repeats}:"
    )
    print(
        f"{'tree':<10}{'wall s':>9}{'fine-tune s':>13}{'outside s':>11}{'outside / fine-tune':>22}"
        f"{'in-process outside s':>23}"
    )
    for name, rows in measured.items():
        wall = statistics.median(r["wall"] for r in rows)
        tune = statistics.median(r["finetune"] for r in rows)
        outside = statistics.median(r["wall"] - r["finetune"] for r in rows)
        inside = statistics.median(r["inside"] - r["finetune"] for r in rows)
        print(f"{name:<10}{wall:>9.1f}{tune:>13.1f}{outside:>11.1f}{100 * outside / tune:>21.1f}%{inside:>23.1f}")


if __name__ == "__main__":
    main()
