"""Benchmark: a pruning grid with the trunk store against the same grid with reuse switched off.

Grid (issue 4): 2 methods × 6 fractions × 4 pruning times, LeNet-300-100 on MNIST (../shared/data, or
--data-dir; falls back to mnist_mini). Both modes run every cell in this process, one after the other, and the
results of every cell must be identical between the two. Prints total wall time of each and the ratio
(baseline: reuse off), and how far the store's wall time is above its ideal: the sum of the cells' own work (dense
steps not yet in the store, pruning, fine-tuning, the evaluations outside training), i.e. what remains if every
fixed cost of a cell (composition, loading data and states, writing results) were zero.

    python bench/bench_store.py                       # the full grid (about 10 minutes on 2 CPU cores)
    python bench/bench_store.py --quick               # 2 × 2 × 2 on mnist_mini, a smoke check
    python bench/bench_store.py --store-only          # the store's grid against its ideal only
    python bench/bench_store.py --store-only --warm   # the same cells through the warm agent's loop (CellRunner)

--warm runs each cell as the warm agent does (koopsweep.sweeps.cells.CellRunner: compose from cached group choices,
preflight, run folder with .hydra/ and log, clean-up after the cell) instead of compose_config + run_experiment.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import open_dict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from koopsweep.config.compose import compose_config  # noqa: E402
from koopsweep.sweeps.cells import CellRunner  # noqa: E402
from koopsweep.train.run import run_experiment  # noqa: E402

METRICS = (
    "dense/test_acc",
    "pruned/test_acc",
    "pruned/test_loss",
    "final/test_acc",
    "final/test_loss",
    "mask/sparsity",
    "overlap/gmp",
)


# What a cell must do itself: the dense steps the store does not already hold, the pruning step (scores, fit),
# fine-tuning (with its period evaluations) and the evaluations outside training (right after pruning, and the
# dense one at t the first time). The sum over the grid is the grid's ideal wall time.
OWN_WORK = ("dense", "prune", "koopman_fit", "finetune", "evaluate")


def run_grid(
    base: list[str], cells: list[list[str]], root: Path, reuse: bool, warm: bool = False
) -> tuple[float, dict, float, float]:
    """Run every cell sequentially; return wall seconds, {cell: metrics}, the cells' own work in seconds and the
    first cell's wall time outside its own work (what the process pays once: torch's optimizer machinery, the data,
    the first composition)."""
    results = {}
    own_work: list[float] = []
    first_outside = 0.0
    runner = CellRunner() if warm else None
    start = time.perf_counter()
    for i, cell in enumerate(cells):
        argv = [*base, *cell, f"store.reuse={str(reuse).lower()}"]
        with contextlib.redirect_stdout(io.StringIO()):
            if runner is not None:
                outcome = runner.run([*argv, f"paths.store_dir={root / 'store'}"], root / "runs" / str(i))
                out = json.loads((outcome.out_dir / "results.json").read_text())
            else:
                cfg = compose_config(argv)
                with open_dict(cfg):
                    cfg.paths.store_dir = str(root / "store")
                    cfg.paths.output_dir = str(root / "runs" / str(i))
                out = run_experiment(cfg)
        results[" ".join(cell)] = {k: out["metrics"].get(k) for k in METRICS}
        own_work.append(sum(out["metrics"].get(f"time/{k}_s", 0.0) for k in OWN_WORK))
        if i == 0:
            first_outside = time.perf_counter() - start - own_work[0]
        print(
            f"  [{'store' if reuse else 'no reuse'}] {i + 1}/{len(cells)} {' '.join(cell)} "
            f"final acc {out['metrics']['final/test_acc']:.4f}",
            flush=True,
        )
    return time.perf_counter() - start, results, sum(own_work), first_outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store-only", action="store_true", help="skip the no-reuse baseline (measure the ideal only)")
    parser.add_argument("--warm", action="store_true", help="run the cells through the warm agent's CellRunner")
    args = parser.parse_args()
    mnist = (Path(args.data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists() and not args.quick
    base = [
        "model=lenet_300_100",
        "logger=none",
        f"threads={args.threads}",
        "progress=false",
        "schedule.train=8ep",
        "schedule.finetune=1ep",
        "schedule.eval_every=1ep",
        "koopman.window=1ep",
    ]
    base += (
        ["dataset=mnist", f"paths.data_dir={args.data_dir}", "dataset.source.download=false"]
        if mnist
        else ["dataset=mnist_mini"]
    )
    methods = ["kmp", "gmp"]  # Koopman first at each t, as `koopsweep sweep` orders a grid: its run records the window
    fractions = [0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375]
    times = ["2ep", "4ep", "6ep", "8ep"]
    if args.quick:
        fractions, times = fractions[:2], ["2ep", "4ep"]
        base = [b if not b.startswith("schedule.train") else "schedule.train=4ep" for b in base]
    # trunk-friendly order: the store helps most when a later pruning time resumes an earlier trunk state
    cells = [
        [f"pruner={m}", f"pruner.fraction={f}", f"schedule.prune_at={t}"]
        for t in times
        for m in methods
        for f in fractions
    ]
    print(
        f"grid: {len(methods)} methods x {len(fractions)} fractions x {len(times)} pruning times = {len(cells)} "
        f"cells, {'MNIST' if mnist else 'mnist_mini'}, LeNet-300-100, {args.threads} threads"
    )
    os.environ.setdefault("WANDB_MODE", "disabled")
    with tempfile.TemporaryDirectory() as tmp:
        t_store, r_store, ideal, once = run_grid(base, cells, Path(tmp) / "store_on", reuse=True, warm=args.warm)
        print(f"\ntrunk store:          {t_store:8.1f} s")
        print(f"its ideal:            {ideal:8.1f} s  (the cells' own work: {', '.join(OWN_WORK)})")
        print(f"above the ideal:      {100 * (t_store / ideal - 1):+8.1f} %")
        print(
            f"  of which once:      {once:8.1f} s  (the first cell outside its work: the process's set-up); "
            f"the other {len(cells) - 1} cells {100 * (t_store - once) / ideal - 100:+.1f} %"
        )
        if args.store_only:
            return
        t_plain, r_plain, _, _ = run_grid(base, cells, Path(tmp) / "store_off", reuse=False, warm=args.warm)
    identical = sum(r_store[c] == r_plain[c] for c in r_store)
    print(f"reuse off (baseline): {t_plain:8.1f} s")
    print(f"speed-up:             {t_plain / t_store:8.2f}x less wall time with the store")
    print(f"identical results:    {identical}/{len(cells)} cells")
    if identical != len(cells):
        for cell in r_store:
            if r_store[cell] != r_plain[cell]:
                print(f"  differs: {cell}: {r_store[cell]} vs {r_plain[cell]}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
