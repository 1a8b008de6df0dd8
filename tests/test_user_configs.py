"""Users bring their own configs the Hydra way (-cd, hydra.searchpath, glob sweeps, -m anywhere): koopsweep runs
what Hydra runs, and still stops bad input with one line before anything is trained or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from koopsweep.cli import main, preflight
from koopsweep.config import conf_dir
from koopsweep.config.preflight import normalize

MINE = """# @package _global_
defaults:
  - override /dataset: synthetic
  - override /pruner: gmp
experiment_name: mine
dataset: {source: {train: 256, test: 128}, batch_size: 64}
schedule: {train: 1ep, finetune: 2it}
pruner: {fraction: 0.6}
threads: 1
"""


@pytest.fixture
def myconf(tmp_path: Path) -> Path:
    """A user's own config folder, outside the package: one experiment, and one with an impossible value."""
    folder = tmp_path / "myconf"
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "mine.yaml").write_text(MINE)
    (folder / "experiment" / "bad.yaml").write_text(MINE.replace("fraction: 0.6", "fraction: 1.5"))
    return folder


def _koopsweep(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KOOPSWEEP_ROOT": str(cwd), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "koopsweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_config_dir_of_ones_own_runs(myconf: Path, tmp_path: Path) -> None:
    proc = _koopsweep(["-cd", str(myconf), "experiment=mine", "logger=none"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = (tmp_path / "outputs" / "runs" / "mine").rglob("results.json")
    results = json.loads(result.read_text())
    assert results["status"] == "finished" and results["pruner"] == "gmp" and results["fraction"] == 0.6


def test_a_searchpath_of_ones_own_runs_and_checks(myconf: Path, tmp_path: Path, capsys) -> None:
    searchpath = f"hydra.searchpath=[file://{myconf}]"
    main([searchpath, "experiment=mine", "logger=none"])
    assert len(list((tmp_path / "outputs" / "runs" / "mine").rglob("results.json"))) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([searchpath, "experiment=bad", "logger=none"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err == (
        "koopsweep: error: pruner.fraction=1.5 is out of range: expected 0 <= fraction < 1 (0.9 = 90 % sparse)"
    )


def test_an_impossible_value_in_ones_own_config_dir_is_one_line_and_nothing_written(
    myconf: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-cd", str(myconf), "experiment=bad", "logger=none"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "pruner.fraction=1.5" in err
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "store").exists()


def test_glob_sweeps_and_multirun_flag_anywhere_are_expanded_as_hydra_does() -> None:
    pruners = [p.stem for p in (conf_dir() / "pruner").glob("*.yaml") if p.stem != "none"]
    assert preflight(normalize(["-m", "pruner=glob(*,exclude=[none])", "logger=none"])) == len(pruners)
    assert preflight(normalize(["logger=none", "pruner.fraction=0.5,0.9", "seed=0,1", "-m"])) == 4
    assert preflight(normalize(["logger=none", "--multirun", "pruner=glob(g*)"])) == 2


def test_glob_multirun_refuses_its_one_impossible_job_before_the_first_trains(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-m", "pruner=glob(*,exclude=[none])", "schedule.prune_at=1it", "logger=none"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "(pruner=kgp schedule.prune_at=1it" in err and "fewer than the 3 DMD needs" in err
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "store").exists()


def test_a_glob_multirun_of_ones_own_experiment_runs(myconf: Path, tmp_path: Path) -> None:
    main(["-cd", str(myconf), "experiment=mine", "pruner=glob(g*)", "logger=none", "-m"])
    results = [json.loads(p.read_text()) for p in (tmp_path / "outputs" / "multiruns").rglob("results.json")]
    assert sorted(r["pruner"] for r in results) == ["ggp", "gmp"]


def test_a_sweep_run_requeued_by_a_wandb_agent_resumes_its_own_branch(tmp_path: Path, capsys) -> None:
    """On resume the agent re-passes the run's whole W&B config (koopsweep's flat keys, hydra_cfg, trunk_id,
    branch_id, _wandb) after the sweep command's own arguments; the run must compose the same config again."""
    from koopsweep.sweeps.agent_command import expand
    from koopsweep.tracking import flatten_config

    command = [
        "logger=none",
        "dataset=synthetic",
        "dataset.source.train=256",
        "dataset.source.test=128",
        "dataset.batch_size=64",
        "schedule.train=1ep",
        "schedule.finetune=2it",
    ]  # the sweep's fixed part
    main([*command, "pruner=gmp", "pruner.fraction=0.5", f"hydra.run.dir={tmp_path}/out/first"])
    first = json.loads((tmp_path / "out" / "first" / "results.json").read_text())
    resolved = first["config"]
    run_config = {
        **flatten_config(resolved),
        "trunk_id": first["trunk_id"],
        "branch_id": first["branch_id"],
        "hydra_cfg": resolved,
        "pruner": "gmp",
        "_wandb": {"cli_version": "0.31.0", "python_version": "3.11.7", "t": {"1": [1, 5], "4": "3.11"}},
    }
    assert resolved["pruner"]["compression"] is None and resolved["progress"] is None  # re-passed as "None"
    requeued = [*command, *expand(["${args_no_hyphens}"], None, run_config), f"hydra.run.dir={tmp_path}/out/again"]
    assert any(a.startswith("hydra_cfg={") for a in requeued) and any(a.startswith("_wandb=") for a in requeued)
    capsys.readouterr()
    main(requeued)
    again = json.loads((tmp_path / "out" / "again" / "results.json").read_text())
    assert again["branch_id"] == first["branch_id"] and again["trunk_id"] == first["trunk_id"]
    assert again["metrics"]["trunk/reused_iterations"] == again["iterations"]["prune_at"]
    assert again["metrics"]["final/test_loss"] == first["metrics"]["final/test_loss"]
    same = {k: v for k, v in again["config"].items() if k != "paths"}
    assert same == {k: v for k, v in resolved.items() if k != "paths"}
