"""Training throughput of LeNet-300-100 on MNIST: in-memory BatchStream against a DataLoader over the same tensors.

Both feed the same model, optimizer and tensors; rounds alternate the two (and their order) so drifts in machine
load hit both alike, and the median per method is reported with the ratio against the DataLoader baseline.

    python bench/bench_loader.py [--data-dir ../shared/data] [--threads 2] [--rounds 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from koopsweep.data import BatchStream, TensorData, load_mnist, load_mnist_mini
from koopsweep.models import LeNet300100

REPO = Path(__file__).resolve().parent.parent


def load(data_dir: Path) -> TensorData:
    if (data_dir / "MNIST" / "raw").is_dir():
        return load_mnist(data_dir, download=False)
    print(f"no MNIST under {data_dir}: falling back to the packaged mnist_mini (10,000 training images)")
    return load_mnist_mini()


def train(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Plain SGD steps over ``batches``; returns the number of samples seen."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seen = 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        seen += len(y)
    return seen


def timed(fn: Callable[[], int]) -> float:
    """Samples per second of one call."""
    start = time.perf_counter()
    samples = fn()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per method per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data = load(args.data_dir)
    x, y = data.train_x, data.train_y
    torch.manual_seed(args.seed)
    initial = LeNet300100(data.input_shape, data.num_classes)
    stream = BatchStream(x, y, args.batch_size, seed=args.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
    iterations = args.epochs * stream.iterations_per_epoch

    def with_stream() -> int:
        return train(copy.deepcopy(initial), (stream.batch(i) for i in range(iterations)))

    def with_loader() -> int:
        return train(copy.deepcopy(initial), (b for _ in range(args.epochs) for b in loader))

    methods = {"DataLoader(TensorDataset)": with_loader, "BatchStream": with_stream}
    print(
        f"LeNet-300-100 on {data.name}: {len(x):,} training images, batch {args.batch_size}, "
        f"{args.epochs} epoch(s) per method per round, {args.rounds} rounds, torch threads {torch.get_num_threads()}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    train(copy.deepcopy(initial), (stream.batch(i) for i in range(20)))  # warm-up of allocator and kernels
    results: dict[str, list[float]] = {name: [] for name in methods}
    for round_index in range(args.rounds):
        order = list(methods) if round_index % 2 == 0 else list(reversed(methods))
        for name in order:
            results[name].append(timed(methods[name]))
        print(f"round {round_index + 1}: " + ", ".join(f"{n} {results[n][-1]:,.0f}/s" for n in methods))

    def data_only(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
        return sum(len(b[1]) for b in batches)

    baseline = statistics.median(results["DataLoader(TensorDataset)"])
    print(f"\n{'method':<28}{'median samples/s':>18}{'ratio':>8}{'batches only, samples/s':>26}")
    loader_only = timed(lambda: data_only(loader))
    stream_only = timed(lambda: data_only(stream.batch(i) for i in range(stream.iterations_per_epoch)))
    for name, only in (("DataLoader(TensorDataset)", loader_only), ("BatchStream", stream_only)):
        median = statistics.median(results[name])
        print(f"{name:<28}{median:>18,.0f}{median / baseline:>7.2f}x{only:>26,.0f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
