"""The console script as users run it: subprocesses, Hydra multirun, offline W&B."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "dataset=synthetic",
    "dataset.source.train=256",
    "dataset.source.test=128",
    "dataset.batch_size=64",
    "schedule.train=1ep",
    "schedule.finetune=1ep",
    "threads=1",
]


def _run(args: list[str], cwd: Path, mode: str = "disabled") -> subprocess.CompletedProcess:
    env = {**os.environ, "KOOPSWEEP_ROOT": str(cwd), "WANDB_MODE": mode, "OMP_NUM_THREADS": "1"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "koopsweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_bad_override_in_a_subprocess_is_one_line_and_exit_2(tmp_path):
    proc = _run(["pruner.fraction=1.2"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "koopsweep: error: pruner.fraction=1.2 is out of range: expected 0 <= fraction < 1 (0.9 = 90 % sparse)"
    )
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "store").exists()


@pytest.mark.slow  # a whole process with W&B offline (seconds of start-up)
def test_two_job_multirun_makes_two_separate_offline_wandb_runs(tmp_path):
    proc = _run(["-m", "pruner.fraction=0.5,0.9", "logger.mode=offline", *TINY], tmp_path, mode="offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted((tmp_path / "outputs" / "multiruns").rglob("results.json"))
    assert len(results) == 2
    fractions = sorted(json.loads(p.read_text())["fraction"] for p in results)
    assert fractions == [0.5, 0.9]
    assert len({p.parent.parent for p in results}) == 1  # one sweep folder for the whole multirun
    runs = sorted((tmp_path / "outputs" / "multiruns").rglob("offline-run-*"))
    assert len(runs) == 2
    assert len({r.name.rsplit("-", 1)[-1] for r in runs}) == 2  # two distinct run ids
    for result in results:  # each job's W&B run lives in its own job folder
        assert len(list(result.parent.rglob("offline-run-*"))) == 1
    trunks = list((tmp_path / "store" / "trunks").iterdir())
    assert len(trunks) == 1  # both jobs share one dense trunk


def test_help_lists_every_subcommand_and_store_verb():
    """``koopsweep --help`` is where a new user finds the commands beside the run: none may be missing from it."""
    from omegaconf import OmegaConf

    from koopsweep.commands import COMMANDS
    from koopsweep.config import conf_dir

    header = OmegaConf.load(conf_dir() / "hydra" / "default.yaml").help.header
    usage = {line.split()[1] for line in header.splitlines() if line.strip().startswith("koopsweep ")}
    assert set(COMMANDS) <= usage, f"missing from koopsweep --help: {sorted(set(COMMANDS) - usage)}"
    store_line = next(line for line in header.splitlines() if line.strip().startswith("koopsweep store "))
    assert store_line.split()[2].split("|") == ["list", "inspect", "curve", "gc"]
