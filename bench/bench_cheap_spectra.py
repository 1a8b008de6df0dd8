"""Benchmark: cheap Koopman spectra — a subset or a random projection of the parameters, with delays, against the
full fit (baseline: the full prunable vector without delays, as a KMP run records it).

One run trains a model (koopsweep's own trainer, data and model configs) for --warmup iterations, then records
--window iterations of several *views* of the weights side by side, each after every optimizer step:

- ``full``: the whole prunable vector (ShrinkBench's conv and linear weights), no delays — the baseline;
- ``classifier``: the classifier's weights only (never pruned; the output layer Redman et al. 2024 track), with
  delays;
- ``subset``: --subset randomly chosen coordinates of the prunable vector, with delays;
- ``sketch``: a CountSketch of the prunable vector to --sketch dimensions (each weight added with a random sign
  into one of the buckets: O(N) time, O(N) memory, a Johnson–Lindenstrauss-style random projection), with delays.

For each view: the seconds spent extracting it during the window (the recording cost, per step), the fit's
seconds, the number of eigenvalues, the spectral distance of its spectrum to the full fit's (all eigenvalues, the
smaller set matched; and the 10 nearest 1 of each), and the predictor scalars of the report (|λ* − 1|, the spectral
gap, the share of eigenvalues within 0.01 of 1) next to the full fit's.

The full fit's time includes building its Gram from the stacked snapshots (a run builds it during training).

    python bench/bench_cheap_spectra.py --run mnistnet:mnist_mini --warmup 150 --window 100
    python bench/bench_cheap_spectra.py --run mnistnet:mnist_mini --run resnet20:cifar10 --data-dir /data \\
        --train-size 5000 --warmup 60 --window 60 --json cheap.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from koopsweep.config.compose import compose_config  # noqa: E402
from koopsweep.koopman import fit_dmd  # noqa: E402
from koopsweep.koopman.spectral import mass_near_one, spectral_distance, spectral_gap  # noqa: E402
from koopsweep.prune.paramspace import classifier_names  # noqa: E402
from koopsweep.train.session import build_run  # noqa: E402

View = Callable[[torch.nn.Module], torch.Tensor]


def count_sketch(numel: int, buckets: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """x ↦ Σ_i s_i x_i e_{h(i)}: random signs s and buckets h, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    bucket = torch.randint(0, buckets, (numel,), generator=g)
    sign = torch.randint(0, 2, (numel,), generator=g).float() * 2 - 1
    return lambda x: torch.zeros(buckets).index_add_(0, bucket, x * sign)


def views(run, args) -> dict[str, tuple[View, int]]:
    """name → (the vector to record, its delays)."""
    space = run.space
    params = dict(run.model.named_parameters())
    head = [n for n in classifier_names(run.model) if n.endswith("weight")]
    g = torch.Generator().manual_seed(args.seed)
    chosen = torch.randperm(space.numel, generator=g)[: args.subset]
    sketch = count_sketch(space.numel, args.sketch, args.seed)
    return {
        "full": (lambda m: space.flatten(m), 0),
        "classifier": (lambda m: torch.cat([params[n].detach().reshape(-1).float() for n in head]), args.delays),
        "subset": (lambda m: space.flatten(m)[chosen], args.delays),
        "sketch": (lambda m: sketch(space.flatten(m)), args.delays),
    }


def scalars(lam: np.ndarray) -> dict[str, float]:
    return {
        "distance_to_1": float(np.min(np.abs(lam - 1))),
        "spectral_gap": spectral_gap(lam),
        "near_one_share": mass_near_one(lam),
    }


def measure(args: argparse.Namespace, model: str, dataset: str) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-cheap-spectra-"))
    overrides = [
        f"model={model}",
        f"dataset={dataset}",
        "pruner=gmp",
        "logger=none",
        f"threads={args.threads}",
        f"seed={args.seed}",
        f"paths.root_dir={root}",
        f"paths.output_dir={root / 'run'}",
        "schedule.train=1ep",
        *([f"paths.data_dir={args.data_dir}"] if args.data_dir else []),
        *([f"dataset.train_size={args.train_size}"] if args.train_size else []),
    ]
    run = build_run(compose_config(overrides))
    tic = time.perf_counter()
    run.trainer.train_until(args.warmup, desc="warm-up")
    warmup_s = time.perf_counter() - tic
    recorded = views(run, args)
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in recorded}
    seconds = dict.fromkeys(recorded, 0.0)

    def record(_iteration: int) -> None:
        for name, (view, _) in recorded.items():
            start = time.perf_counter()
            rows[name].append(view(run.model).detach().cpu().float().clone())
            seconds[name] += time.perf_counter() - start

    record(run.trainer.iteration)
    run.trainer.hooks.append(record)
    tic = time.perf_counter()
    run.trainer.train_until(args.warmup + args.window, desc="window")
    window_s = time.perf_counter() - tic - sum(seconds.values())
    out: dict = {
        "model": model,
        "dataset": dataset,
        "numel": run.space.numel,
        "warmup_iterations": args.warmup,
        "window_snapshots": args.window + 1,
        "warmup_s": warmup_s,
        "window_training_s": window_s,
        "views": {},
    }
    reference = None
    for name, (_, delays) in recorded.items():
        trajectory = torch.stack(rows[name]).double()
        start = time.perf_counter()
        fit = fit_dmd(trajectory, delays=delays)
        fit_s = time.perf_counter() - start
        lam = fit.eigenvalues.numpy()
        if reference is None:
            reference = lam
        out["views"][name] = {
            "dimension": int(trajectory.shape[1]),
            "delays": delays,
            "eigenvalues": int(lam.size),
            "record_s_per_step": seconds[name] / (args.window + 1),
            "fit_s": fit_s,
            "distance_to_full": spectral_distance(lam, reference),
            "distance_to_full_nearest10": spectral_distance(lam, reference, nearest=10),
            **scalars(lam),
        }
    return out


def table(result: dict) -> str:
    head = (
        "| view | dim | delays | eigenvalues | record / step | fit | distance to full (all; 10 nearest 1) "
        "| \\|λ* − 1\\| | gap | share near 1 |"
    )
    lines = [head, "|---" * 10 + "|"]
    for name, v in result["views"].items():
        record_ms = 1e3 * v["record_s_per_step"]
        lines.append(
            f"| {name} | {v['dimension']:,} | {v['delays']} | {v['eigenvalues']} | {record_ms:.2f} ms "
            f"| {v['fit_s']:.2f} s | {v['distance_to_full']:.3g}; {v['distance_to_full_nearest10']:.3g} "
            f"| {v['distance_to_1']:.2e} | {v['spectral_gap']:.2e} | {v['near_one_share']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="append", default=None, metavar="MODEL:DATASET", help="repeatable; default mnistnet:mnist_mini"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=150, help="iterations trained before the window")
    parser.add_argument("--window", type=int, default=100, help="iterations recorded")
    parser.add_argument("--delays", type=int, default=8, help="delays of the cheap views")
    parser.add_argument("--subset", type=int, default=1000, help="coordinates of the random subset")
    parser.add_argument("--sketch", type=int, default=1000, help="dimension of the CountSketch projection")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for spec in args.run or ["mnistnet:mnist_mini"]:
        model, _, dataset = spec.partition(":")
        result = measure(args, model, dataset or "mnist_mini")
        results.append(result)
        print(
            f"{result['model']} on {result['dataset']}: {result['numel']:,} prunable weights, window of "
            f"{result['window_snapshots']} snapshots after {result['warmup_iterations']} iterations "
            f"(window training {result['window_training_s']:.1f} s)"
        )
        print(table(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
