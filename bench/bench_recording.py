"""Benchmark: the cost of recording the Koopman window during dense training.

MnistNet on MNIST (../shared/data or --data-dir), dense training to t = --epochs with the window = the last
epoch recorded every iteration (pruner=kmp) against the same training without recording (pruner=gmp, baseline),
alternating in one process, --repeats times. Reports the dense-phase time of each and the overhead in percent
(the DMD fit at t is timed separately: it is the pruning step, not training).

    python bench/bench_recording.py --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
from pathlib import Path

from omegaconf import open_dict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from koopsweep.config.compose import compose_config  # noqa: E402
from koopsweep.train.run import run_experiment  # noqa: E402


def dense_seconds(overrides: list[str], root: Path) -> tuple[float, dict]:
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.paths.store_dir = str(root / "store")
        cfg.paths.output_dir = str(root / "run")
    with contextlib.redirect_stdout(io.StringIO()):
        out = run_experiment(cfg)
    return out["metrics"]["time/dense_s"], out["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--model", default="mnistnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the run's device setting)")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    mnist = (Path(args.data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    data = (
        ["dataset=mnist", f"paths.data_dir={args.data_dir}", "dataset.source.download=false"]
        if mnist
        else ["dataset=mnist_mini"]
    )
    base = [
        f"model={args.model}",
        *data,
        "logger=none",
        "store.reuse=false",
        f"threads={args.threads}",
        "progress=false",
        f"schedule.train={args.epochs}ep",
        "schedule.finetune=0it",
        "schedule.eval_every=1ep",
        "koopman.window=1ep",
        "pruner.fraction=0.9",
        f"device={args.device}",
    ]
    timings: dict[str, list[float]] = {"gmp": [], "kmp": []}
    fit = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for method in ("gmp", "kmp") if r % 2 == 0 else ("kmp", "gmp"):
                seconds, metrics = dense_seconds([*base, f"pruner={method}"], Path(tmp) / f"{method}{r}")
                timings[method].append(seconds)
                if method == "kmp":
                    fit.append(metrics["time/koopman_fit_s"])
                print(f"  round {r + 1}: {method} dense {seconds:.1f} s", flush=True)
    plain, recorded = statistics.median(timings["gmp"]), statistics.median(timings["kmp"])
    print(
        f"\n{args.model} on {'MNIST' if mnist else 'mnist_mini'}, {args.epochs} epochs dense, window = last epoch, "
        f"device {args.device}, {args.threads} threads"
    )
    print(f"dense training without recording (baseline): {plain:7.1f} s (median of {args.repeats})")
    print(f"dense training with recording:               {recorded:7.1f} s")
    print(f"recording overhead:                          {100 * (recorded / plain - 1):+7.2f} %")
    print(f"DMD fit of the window (θ* and ĝ, cached):    {statistics.median(fit):7.2f} s")


if __name__ == "__main__":
    main()
