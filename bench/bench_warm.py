"""Benchmark: the warm agent against a process per cell (issue 18's "Measure" list), side by side in one run.

    python bench/bench_warm.py cell --repeats 3             # reused MnistNet cell on MNIST: cold process vs warm agent
    python bench/bench_warm.py cell --model resnet20        # the same for ResNet-20 on CIFAR-10 (short fine-tuning)
    python bench/bench_warm.py grid                         # `koopsweep sweep local` vs `--warm`: wall time vs ideal
    python bench/bench_warm.py memory --cells 50            # the warm agent's resident size after 1, 10, 50 cells
    python bench/bench_warm.py cell --quick                 # any of them at tiny size (mnist_mini), a smoke check

cell: a trunk is trained once; then, alternating, one cell runs in a fresh `python -m koopsweep` process (what a
cold W&B agent or Hydra job runs) and one in a warm agent's long-lived process (koopsweep.sweeps.cells.CellRunner,
fed through a pipe), each at a new fraction so that its branch is new. Baseline of the ratio: the cell's own
fine-tuning time. Cold: the process's wall time minus fine-tuning and evaluations; warm: the cell's wall time
inside the agent (compose, preflight, run folder, run, clean-up) minus the same. The warm agent's first cell (the
process start) is reported apart. Goal (issue 18): warm <= 5 % of the fine-tuning.

grid: a 6-cell sweep file (2 pruners x 3 fractions on one trunk) run by `koopsweep sweep local` (a Hydra job per
cell) and by `koopsweep sweep local --warm`, each on a fresh store, against its ideal: the sum of the cells' own
work (dense steps, pruning, Koopman fit, fine-tuning, evaluations; bench/bench_store.py's OWN_WORK). Goal: within
5 % of the ideal.

memory: one CellRunner runs --cells tiny cells (LeNet-300-100 on mnist_mini, KMP, GMP and GGP in turn); the
process's resident set size (VmRSS) after cells 1, 10 and --cells.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OWN_WORK = ("dense", "prune", "koopman_fit", "finetune", "evaluate")


def _mnist(args: argparse.Namespace) -> list[str]:
    if args.quick:
        return ["dataset=mnist_mini"]
    return ["dataset=mnist", f"paths.data_dir={args.data_dir}", "dataset.source.download=false"]


def _data(args: argparse.Namespace) -> list[str]:
    if args.quick or args.model != "resnet20":
        return _mnist(args)
    return [
        "dataset=cifar10",
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        "dataset.source.download=false",
    ]


def cell_overrides(args: argparse.Namespace) -> list[str]:
    """The reused cell, but its fraction: MnistNet 1 epoch + 1 epoch, or ResNet-20 with a short fine-tuning."""
    if args.model == "resnet20" and not args.quick:
        model = ["model=resnet20", "schedule.train=100it", "schedule.finetune=200it", "schedule.eval_every=200it"]
    else:
        model = ["model=mnistnet", "schedule.train=1ep", "schedule.finetune=1ep"]
    common = ["pruner=gmp", f"threads={args.threads}", "logger=none", "progress=false", f"device={args.device}"]
    return [*model, *_data(args), *common]


def _env(root: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "KOOPSWEEP_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": str(threads)}


def _costs(metrics: dict, wall: float) -> dict:
    tune, evals = metrics["time/finetune_s"], metrics.get("time/evaluate_s", 0.0)
    return {"wall": wall, "finetune": tune, "evaluate": evals, "outside": wall - tune - evals}


def cold_cell(root: Path, overrides: list[str], threads: int, out: str) -> dict:
    """One cell in a fresh process, as a cold agent runs it."""
    run_dir = root / "runs" / out
    argv = [sys.executable, "-m", "koopsweep", *overrides, f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=_env(root, threads), cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cold cell failed:\n{proc.stderr[-3000:]}")
    return _costs(json.loads((run_dir / "results.json").read_text())["metrics"], wall)


def warm_child() -> None:
    """The warm agent: one CellRunner; reads `<run dir> <override> ...` lines (JSON) and answers with JSON lines."""
    from koopsweep.sweeps.cells import CellRunner, configure_console_logging

    answers, sys.stdout = sys.stdout, sys.stderr  # the cells' output (and log lines) away from the answers
    configure_console_logging()  # as the warm agent does
    runner = CellRunner()
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        outcome = runner.run(request["argv"], Path(request["dir"]))
        wall = time.perf_counter() - start
        metrics = json.loads((Path(request["dir"]) / "results.json").read_text())["metrics"]
        answers.write(json.dumps({"status": outcome.status, **_costs(metrics, wall)}) + "\n")
        answers.flush()


def bench_cell(args: argparse.Namespace) -> None:
    overrides = cell_overrides(args)
    label = "ResNet-20 on CIFAR-10" if args.model == "resnet20" else "MnistNet on MNIST"
    label = "MnistNet on mnist_mini" if args.quick else label
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cold_cell(root, [*overrides, "pruner.fraction=0.5"], args.threads, "trunk")  # trains the trunk
        warm = subprocess.Popen(
            [sys.executable, __file__, "warm-child"],
            env=_env(root, args.threads),
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

        def warm_cell(fraction: float, out: str) -> dict:
            request = {"argv": [*overrides, f"pruner.fraction={fraction}"], "dir": str(root / "runs" / out)}
            warm.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            warm.stdin.flush()  # type: ignore[union-attr]
            answer = warm.stdout.readline()  # type: ignore[union-attr]
            if not answer:
                raise SystemExit("the warm agent died; run `python bench/bench_warm.py warm-child` to see why")
            return json.loads(answer)

        first = warm_cell(0.55, "warm-first")
        cold, hot = [], []
        for r in range(args.repeats):
            fraction = round(0.6 + 0.03 * r, 3)
            for name in ("cold", "warm") if r % 2 == 0 else ("warm", "cold"):
                if name == "cold":
                    got = cold_cell(root, [*overrides, f"pruner.fraction={fraction}"], args.threads, f"cold{r}")
                    cold.append(got)
                else:
                    got = warm_cell(fraction + 0.01, f"warm{r}")
                    hot.append(got)
                print(
                    f"  round {r + 1} {name}: wall {got['wall']:.1f} s, fine-tuning {got['finetune']:.1f} s, "
                    f"outside {got['outside']:.2f} s",
                    flush=True,
                )
        warm.stdin.close()  # type: ignore[union-attr]
        warm.wait()
    print(f"\nreused GMP cell, {label}, {args.device}, {args.threads} threads, median of {args.repeats}:")
    print(f"{'':<28}{'wall s':>9}{'fine-tune s':>13}{'eval s':>8}{'outside s':>11}{'outside / fine-tune':>21}")
    for name, rows in (("cold process", cold), ("warm agent", hot), ("warm agent, first cell", [first])):
        med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "finetune", "evaluate", "outside")}
        print(
            f"{name:<28}{med['wall']:>9.1f}{med['finetune']:>13.1f}{med['evaluate']:>8.2f}{med['outside']:>11.2f}"
            f"{100 * med['outside'] / med['finetune']:>20.1f}%"
        )


def _grid_sweep(path: Path, args: argparse.Namespace) -> None:
    base = ["model=lenet_300_100", *_mnist(args), "schedule.train=2ep", "schedule.finetune=1ep", "progress=false"]
    spec = {
        "method": "grid",
        "parameters": {"pruner": {"values": ["kmp", "gmp"]}, "pruner.fraction": {"values": [0.5, 0.75, 0.9]}},
        "command": ["${env}", "koopsweep", *base, "${args_no_hyphens}"],
    }
    path.write_text(yaml.safe_dump(spec))


def _sweep_local(sweep: Path, root: Path, args: argparse.Namespace, warm: bool) -> tuple[float, float, int]:
    """(wall, ideal, cells) of one `koopsweep sweep local` on a fresh store."""
    argv = [
        sys.executable,
        "-m",
        "koopsweep",
        "sweep",
        "local",
        str(sweep),
        "--jobs",
        "1",
        "--threads",
        str(args.threads),
        "--wandb",
        "disabled",
        f"hydra.sweep.dir={root / 'sweep'}",
    ]
    argv += ["--warm"] if warm else []
    start = time.perf_counter()
    proc = subprocess.run(argv, env=_env(root, args.threads), cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep local {'--warm ' if warm else ''}failed:\n{proc.stderr[-3000:]}")
    results = sorted((root / "sweep").glob("*/results.json"))
    metrics = [json.loads(r.read_text())["metrics"] for r in results]
    ideal = sum(m.get(f"time/{k}_s", 0.0) for m in metrics for k in OWN_WORK)
    return wall, ideal, len(results)


def bench_grid(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "grid6.yaml"
        _grid_sweep(sweep, args)
        rows: dict[str, list[tuple[float, float, int]]] = {"sweep local": [], "sweep local --warm": []}
        for r in range(args.repeats):
            order = [False, True] if r % 2 == 0 else [True, False]
            for warm in order:
                root = Path(tmp) / f"{'warm' if warm else 'cold'}{r}"
                root.mkdir()
                got = _sweep_local(sweep, root, args, warm)
                rows["sweep local --warm" if warm else "sweep local"].append(got)
                print(
                    f"  round {r + 1} {'warm' if warm else 'cold'}: wall {got[0]:.1f} s, ideal {got[1]:.1f} s, "
                    f"{got[2]} cells",
                    flush=True,
                )
    print(
        f"\n6-cell grid (2 pruners x 3 fractions, LeNet-300-100, one trunk), {args.threads} threads, "
        f"median of {args.repeats}:"
    )
    print(f"{'command':<22}{'wall s':>9}{'ideal s':>9}{'above ideal':>13}")
    for name, got in rows.items():
        wall, ideal = statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
        print(f"{name:<22}{wall:>9.1f}{ideal:>9.1f}{100 * (wall / ideal - 1):>+12.1f}%")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no /proc/self/status: the memory bench needs Linux")


def bench_memory(args: argparse.Namespace) -> None:
    from koopsweep.sweeps.cells import CellRunner

    marks = sorted({1, 10, args.cells})
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(KOOPSWEEP_ROOT=tmp, WANDB_MODE="disabled")
        runner = CellRunner()
        base = [
            "model=lenet_300_100",
            "dataset=mnist_mini",
            "schedule.train=2ep",
            "schedule.finetune=1ep",
            "logger=none",
            "progress=false",
            f"threads={args.threads}",
        ]
        print(f"resident set size before the first cell: {rss_mib():.0f} MiB")
        for n in range(1, args.cells + 1):
            cell = [
                *base,
                f"pruner={('kmp', 'gmp', 'ggp')[n % 3]}",
                f"pruner.fraction={0.3 + 0.01 * (n % 60):.2f}",
                f"seed={n % 2}",
            ]
            with contextlib.redirect_stdout(io.StringIO()):
                outcome = runner.run(cell, Path(tmp) / "runs" / str(n))
            assert outcome.status == "finished", outcome
            if n in marks:
                print(f"after {n:>3} cells: {rss_mib():.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("cell", "grid", "memory", "warm-child"))
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--cache-dir", default=str(REPO / "cache"), help="decoded CIFAR-10 (kept between runs)")
    parser.add_argument("--model", choices=("mnistnet", "resnet20"), default="mnistnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="tiny data (mnist_mini): check that the bench runs")
    args = parser.parse_args()
    {"cell": bench_cell, "grid": bench_grid, "memory": bench_memory, "warm-child": lambda a: warm_child()}[args.what](
        args
    )


if __name__ == "__main__":
    main()
