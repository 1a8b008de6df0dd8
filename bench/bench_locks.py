"""Benchmark: time spent waiting on trunk locks in a timing grid run with 2 jobs, before and after shared reads.

Grid: 2 trunks (seeds 0, 1) x 4 pruning times x 2 pruners (kmp, gmp) x 2 fractions = 32 cells, LeNet-300-100 on
MNIST (--quick: mnist_mini, 2 x 4 x 2 x 1), run by `koopsweep sweep local --jobs 2` from each source tree given, and
by `--warm --jobs 2` from trees that have it. Every process is instrumented from outside the tree (a sitecustomize
on PYTHONPATH wraps Trunk.lock, Trunk.reading where it exists, and train_trunk), so any version of koopsweep can be
measured the same way. Per variant it prints the wall time, the total time spent waiting for locks, and the part of
it spent by cells whose state at the pruning time was already in the store when they asked for it (the goal of
issue 18: none of that).

    git worktree add /tmp/before ecc9506~1        # main before the shared reads
    python bench/bench_locks.py --tree before=/tmp/before --tree after=.
    python bench/bench_locks.py --quick            # this checkout only, tiny: check that the bench runs
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

import yaml

REPO = Path(__file__).resolve().parent.parent

HOOK = '''\
"""bench/bench_locks.py: time every wait for a trunk lock in this process; one JSON line each to $KS_LOCK_LOG."""
import contextlib, json, os, threading, time

if os.environ.get("KS_LOCK_LOG"):
    from koopsweep.store import trunk as _trunk
    from koopsweep.train import dense as _dense, run as _run

    _local = threading.local()

    def _log(record):
        with open(os.environ["KS_LOCK_LOG"], "a") as out:
            out.write(json.dumps({"pid": os.getpid(), **record}) + "\\n")

    def _timed(method, kind):
        @contextlib.contextmanager
        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            with method(self, *args, **kwargs):
                waited = time.perf_counter() - start
                _local.waited = getattr(_local, "waited", 0.0) + waited
                _log({"kind": kind, "trunk": self.id, "waited": waited})
                yield
        return wrapper

    _trunk.Trunk.lock = _timed(_trunk.Trunk.lock, "exclusive")
    if hasattr(_trunk.Trunk, "reading"):
        _trunk.Trunk.reading = _timed(_trunk.Trunk.reading, "shared")

    def _cell(original):
        def train_trunk(run, trunk, tracker):
            existed = run.plan.prune_at in trunk.state_iterations()
            _local.waited = 0.0
            start = time.perf_counter()
            try:
                return original(run, trunk, tracker)
            finally:
                _log({"kind": "cell", "trunk": trunk.id, "prune_at": run.plan.prune_at, "existed": existed,
                      "waited": _local.waited, "seconds": time.perf_counter() - start})
        return train_trunk

    _run.train_trunk = _cell(_dense.train_trunk)
'''


def write_sweep(path: Path, args: argparse.Namespace) -> None:
    data = (
        ["dataset=mnist_mini"]
        if args.quick
        else ["dataset=mnist", f"paths.data_dir={args.data_dir}", "dataset.source.download=false"]
    )
    times = ["20it", "40it", "60it", "80it"] if args.quick else ["1ep", "2ep", "3ep", "4ep"]
    fractions = [0.9] if args.quick else [0.5, 0.9]
    base = ["model=lenet_300_100", *data, "schedule.train=4ep", "schedule.finetune=1ep", "koopman.window=1ep"]
    spec = {
        "method": "grid",
        "parameters": {
            "pruner": {"values": ["kmp", "gmp"]},
            "pruner.fraction": {"values": fractions},
            "schedule.prune_at": {"values": times},
            "seed": {"values": [0, 1]},
        },
        "command": ["${env}", "koopsweep", *base, "progress=false", "${args_no_hyphens}"],
    }
    path.write_text(yaml.safe_dump(spec))


def run_variant(tree: Path, sweep: Path, root: Path, hook: Path, warm: bool, threads: int) -> dict:
    log = root / "locks.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "KS_LOCK_LOG": str(log),
        "KOOPSWEEP_ROOT": str(root),
        "WANDB_MODE": "disabled",
    }
    argv = [sys.executable, "-m", "koopsweep", "sweep", "local", str(sweep), "--jobs", "2", "--threads", str(threads)]
    argv += ["--wandb", "disabled", f"hydra.sweep.dir={root / 'sweep'}", *(["--warm"] if warm else [])]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{tree} {'--warm ' if warm else ''}failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    cells = [r for r in records if r["kind"] == "cell"]
    return {
        "wall": wall,
        "cells": len(cells),
        "waited": sum(r["waited"] for r in cells),
        "waited_existing": sum(r["waited"] for r in cells if r["existed"]),
        "waits": sum(1 for r in cells if r["waited"] > 0.5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH", help="a source tree (repeatable)")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job (2 jobs)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)} or {"this": REPO}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        sweep = Path(tmp) / "timing.yaml"
        write_sweep(sweep, args)
        for name, tree in trees.items():
            variants = [False] + ([True] if (tree / "koopsweep" / "sweeps" / "warm_local.py").exists() else [])
            for warm in variants:
                label = f"{name}{' --warm' if warm else ''}"
                root = Path(tmp) / label.replace(" --", "-")
                root.mkdir()
                results[label] = run_variant(tree, sweep, root, hook, warm, args.threads)
                print(f"  {label}: {results[label]}", flush=True)
    print(f"\ntiming grid, 2 trunks x 4 pruning times, 2 jobs x {args.threads} thread(s):")
    print(
        f"{'variant':<16}{'cells':>6}{'wall s':>9}{'lock waits s':>14}{'on stored states s':>20}{'waits > 0.5 s':>15}"
    )
    for label, r in results.items():
        print(
            f"{label:<16}{r['cells']:>6}{r['wall']:>9.1f}{r['waited']:>14.1f}{r['waited_existing']:>20.1f}"
            f"{r['waits']:>15}"
        )


if __name__ == "__main__":
    main()
