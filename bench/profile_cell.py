"""Profile: where a reused cell's time outside fine-tuning and its evaluations goes, cold process vs warm agent.

A reused GMP cell (MnistNet on MNIST, a trunk of 1 epoch, 1 epoch of fine-tuning; --quick: mnist_mini) is run
under cProfile twice: in a fresh process (what a cold `wandb agent` or Hydra job runs), and in a warm agent's
process after another cell (koopsweep.sweeps.cells.CellRunner). For each, it prints the seconds the cell spends
in each step of koopsweep/train/run.py outside training (cumulative time of the named functions) and, measured
without the profiler in the same processes, the in-run time outside fine-tuning and evaluations as a share of the
fine-tuning (the issue's measure: time/total_s - time/finetune_s - time/evaluate_s).

    python bench/profile_cell.py --threads 2            # MNIST from ../shared/data
    python bench/profile_cell.py --quick --threads 1    # mnist_mini, a smoke check
    python bench/profile_cell.py --dump /tmp/cell       # also write the raw profiles (snakeviz, pstats)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (label, file suffix, function name) of the steps of run_experiment outside training
STEPS = [
    ("build the run (imports on first use, data)", "train/session.py", "build_run"),
    ("  of which: load the data set", "koopsweep/data/__init__.py", "load_dataset"),
    ("  of which: the optimizer (imports torch._dynamo once)", "train/optim.py", "build_optimizer"),
    ("trunk state at t (read, restore, curve)", "train/dense.py", "train_trunk"),
    ("  of which: read the state file", "store/trunk.py", "read_state"),
    ("dense evaluation at t (cached per trunk)", "train/session.py", "record_dense_eval"),
    ("prune (scores, exact-k, overlaps)", "train/pruning.py", "prune"),
    ("W&B run start (tracker)", "tracking/tracker.py", "for_run"),
    ("results record (counts, FLOPs)", "train/run.py", "_record"),
    ("model.pt, masks.pt", "koopsweep/artifacts.py", "save_checked"),
    ("resolved config (OmegaConf)", "omegaconf/omegaconf.py", "to_container"),
]


def cell_args(data: list[str], threads: int) -> list[str]:
    """The cell's overrides but the fraction (each run of the cell gets its own, so its branch is new)."""
    return [
        "model=mnistnet",
        *data,
        "schedule.train=1ep",
        "schedule.finetune=1ep",
        "pruner=gmp",
        f"threads={threads}",
        "logger=none",
        "progress=false",
        "device=cpu",
    ]


def outside(metrics: dict) -> float:
    return metrics["time/total_s"] - metrics["time/finetune_s"] - metrics.get("time/evaluate_s", 0.0)


def step_times(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, suffix, function in STEPS:
            if name == function and file.endswith(suffix):
                found[label] = found.get(label, 0.0) + cumulative
    return found


def child(args: argparse.Namespace) -> None:
    """One process: [a warm-up cell,] the profiled cell, then the same cell unprofiled; JSON on stdout's last line."""
    import contextlib
    import io

    from koopsweep.sweeps.cells import CellRunner

    runner = CellRunner()
    base = json.loads(args.cell)
    root = Path(args.root)

    def run(fraction: float, name: str) -> dict:
        with contextlib.redirect_stdout(io.StringIO()):
            outcome = runner.run([*base, f"pruner.fraction={fraction}"], root / "runs" / name)
        assert outcome.status == "finished", outcome
        return json.loads((outcome.out_dir / "results.json").read_text())["metrics"]

    if args.label == "trunk":
        run(0.5, "trunk")
        print(json.dumps({}))
        return
    if args.warm:
        run(0.55, f"{args.label}-warmup")
    profile = cProfile.Profile()
    profile.enable()
    profiled = run(0.6, f"{args.label}-profiled")
    profile.disable()
    if args.dump:
        profile.dump_stats(f"{args.dump}-{args.label}.prof")
    plain = run(0.65, f"{args.label}-plain") if args.warm else None
    stats = pstats.Stats(profile)
    print(json.dumps({"steps": step_times(stats), "profiled": profiled, "plain": plain}))


def spawn(label: str, root: Path, cell: list[str], threads: int, warm: bool, dump: str | None) -> dict:
    argv = [sys.executable, __file__, "--child", "--label", label, "--root", str(root), "--cell", json.dumps(cell)]
    argv += ["--warm"] if warm else []
    argv += ["--dump", dump] if dump else []
    env = {**os.environ, "KOOPSWEEP_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="mnist_mini instead of MNIST")
    parser.add_argument("--dump", help="write <DUMP>-cold.prof and <DUMP>-warm.prof")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    data = ["dataset=mnist_mini"] if args.quick else ["dataset=mnist", f"paths.data_dir={args.data_dir}"]
    data += [] if args.quick else ["dataset.source.download=false"]
    cell = cell_args(data, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        spawn("trunk", root, cell, args.threads, False, None)  # trains the trunk
        print(f"trunk trained in {time.perf_counter() - start:.0f} s; profiling a reused cell", flush=True)
        cold = spawn("cold", root, cell, args.threads, False, args.dump)
        warm = spawn("warm", root, cell, args.threads, True, args.dump)
    print(f"\nreused GMP cell, {'mnist_mini' if args.quick else 'MNIST'}, MnistNet, {args.threads} threads")
    print(f"{'step (cumulative s, under cProfile)':<56}{'cold process':>14}{'warm agent':>12}")
    for label, _, _ in STEPS:
        print(f"{label:<56}{cold['steps'].get(label, 0.0):>14.3f}{warm['steps'].get(label, 0.0):>12.3f}")
    for name, result in (("cold process", cold["profiled"]), ("warm agent", warm["plain"] or warm["profiled"])):
        tune, out = result["time/finetune_s"], outside(result)
        print(
            f"{name:<13} fine-tuning {tune:6.1f} s, evaluations {result.get('time/evaluate_s', 0):5.2f} s, "
            f"in-run outside both {out:5.2f} s = {100 * out / tune:4.1f} % of fine-tuning"
            + (" (profiled run)" if name == "cold process" else " (unprofiled run)")
        )


if __name__ == "__main__":
    main()
