"""The warm agent: sweep cells one after another in one process, driven by W&B (a stand-in for wandb.agent that
calls the function as W&B does) or by the sweep's own grid; results as cold, failures contained, SIGTERM/resume."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from koopsweep.artifacts import load_checked
from koopsweep.sweeps import warm_local
from koopsweep.sweeps.cells import CellRunner
from koopsweep.sweeps.spec import load_spec
from koopsweep.sweeps.warm_agent import WarmAgent, cell_argv, sweep_params

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "dataset=synthetic",
    "dataset.source.train=256",
    "dataset.source.test=128",
    "dataset.batch_size=64",
    "schedule.train=2ep",
    "schedule.finetune=1ep",
    "schedule.eval_every=4it",
    "logger=none",
    "threads=1",
    "progress=false",
]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checked(out / "model.pt")


def _metrics(out: Path) -> dict:
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "trunk/"))}  # trunk/: who trained it


def _same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _metrics(a) == _metrics(b)


def _sweep(tmp_path: Path, parameters: dict, fixed: list[str] | None = None) -> Path:
    path = tmp_path / "sweep.yaml"
    command = ["${env}", "koopsweep", *(fixed if fixed is not None else TINY), "${args_no_hyphens}"]
    path.write_text(yaml.safe_dump({"method": "grid", "parameters": parameters, "command": command}))
    return path


def fake_wandb_agent(tmp_path: Path, points: list[dict]):
    """wandb.agent(sweep, function=f, count=n) as W&B's in-process agent runs it: per run, the run's config in a
    YAML file named by WANDB_SWEEP_PARAM_PATH (written by wandb's own helper), WANDB_SWEEP_ID and WANDB_RUN_ID set,
    and the function called in a thread of its own; an exception is caught and counted, as pyagent does."""
    from wandb.sdk.lib import config_util

    raised: list[BaseException] = []

    def agent(sweep_id: str, function, count: int | None = None) -> None:
        for number, point in enumerate(points[:count] if count else points):
            path = tmp_path / "wandb" / f"sweep-{sweep_id}" / f"config-run{number}.yaml"
            config_util.save_config_file_from_dict(str(path), {k: {"value": v} for k, v in point.items()})
            os.environ.update(WANDB_SWEEP_PARAM_PATH=str(path), WANDB_SWEEP_ID=sweep_id, WANDB_RUN_ID=f"run{number}")

            def call() -> None:
                try:
                    function()
                except BaseException as exc:  # what pyagent would see
                    raised.append(exc)

            thread = threading.Thread(target=call)
            thread.start()
            thread.join()
            for name in ("WANDB_SWEEP_PARAM_PATH", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
                os.environ.pop(name, None)

    agent.raised = raised  # type: ignore[attr-defined]
    return agent


def test_a_warm_cell_is_bit_identical_to_its_first_run_after_other_cells(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CellRunner()
    threads = torch.get_num_threads()
    cell = [*TINY, "pruner=gmp", "pruner.fraction=0.5"]
    assert runner.run(cell, tmp_path / "first").status == "finished"
    # a cell that differs in what a run sets: pruner (gradients), seed, precision, threads (Koopman: the slow test)
    other = [*TINY, "pruner=ggp", "pruner.fraction=0.9", "seed=3", "precision=fp64", "threads=2"]
    assert runner.run(other, tmp_path / "other").status == "finished"
    assert torch.get_num_threads() == threads  # put back after the cell
    assert runner.run(cell, tmp_path / "again").status == "finished"
    _same_run(tmp_path / "first", tmp_path / "again")
    for name in ("config.yaml", "overrides.yaml"):
        assert (tmp_path / "again" / ".hydra" / name).is_file()
    assert yaml.safe_load((tmp_path / "again" / ".hydra" / "overrides.yaml").read_text()) == cell
    assert (tmp_path / "again" / "koopsweep.log").is_file()


def test_the_wandb_path_runs_every_point_and_contains_bad_and_failing_ones(tmp_path, monkeypatch, capsys):
    """A refused point fails its run in one line, a crashing cell fails its run; the agent goes on."""
    import koopsweep.train.run as run_module

    monkeypatch.chdir(tmp_path)
    spec = load_spec(_sweep(tmp_path, {"pruner.fraction": {"values": [1.5, 0.7, 0.9]}}, [*TINY, "pruner=gmp"]))
    real = run_module.run_experiment

    def crash_at_07(cfg):
        if cfg.pruner.fraction == 0.7:
            raise RuntimeError("a bug in the cell")
        return real(cfg)

    monkeypatch.setattr(run_module, "run_experiment", crash_at_07)
    started: list[str] = []
    monkeypatch.setattr("koopsweep.sweeps.warm_agent._fail_unstarted", started.append)
    points = [{"pruner.fraction": v} for v in (1.5, 0.7, 0.9)]
    fake = fake_wandb_agent(tmp_path, points)
    agent = WarmAgent(spec)
    assert agent.serve("ent/proj/abc", agent=fake) == 0
    assert fake.raised == []  # nothing reached W&B's agent: it would count failures and kill itself
    assert [o.status for o in agent.outcomes] == ["rejected", "failed", "finished"]
    err = capsys.readouterr().err
    refused = [line for line in err.splitlines() if line.startswith("koopsweep: error:")]
    assert len(refused) == 1 and "pruner.fraction" in refused[0]
    assert started == [agent.outcomes[0].message]  # the refused run is opened and finished failed
    assert "a bug in the cell" in err  # the crash's traceback, as a cold run prints it
    finished = agent.outcomes[2].out_dir
    config = json.loads((finished / "results.json").read_text())["config"]
    assert config["pruner"]["fraction"] == 0.9 and config["paths"]["output_dir"] == str(finished)
    assert finished.parent.parent == tmp_path / "outputs" / "runs"  # where a lone `koopsweep` run goes
    assert agent.report().startswith("koopsweep: warm agent ran 3 runs (1 failed, 1 finished, 1 rejected)")


def test_sweep_params_and_argv_are_what_a_cold_agent_runs(tmp_path):
    spec = load_spec(_sweep(tmp_path, {"pruner.fraction": {"values": [0.5]}}, ["pruner=gmp"]))
    path = tmp_path / "config.yaml"
    path.write_text("wandb_version: 1\n\npruner.fraction:\n  value: 0.5\n")
    assert sweep_params(str(path)) == {"pruner.fraction": 0.5}
    # a re-queued run gets its whole W&B config back: the bookkeeping keys go, as koopsweep.cli drops them
    requeued = {"pruner.fraction": 0.5, "trunk_id": "abc", "paths.output_dir": "/old", "pruner.compression": None}
    assert cell_argv(spec, requeued) == ["pruner=gmp", "pruner.fraction=0.5", "pruner.compression=null"]


def _sigterm_at(monkeypatch: pytest.MonkeyPatch, iteration: int) -> None:
    """SIGTERM to this process before the step that reaches ``iteration``, from the cell's thread, as `kill` sends
    it; the thread then yields, so that the main thread's handler has run when the step ends."""
    from koopsweep.train.loop import Trainer

    original = Trainer.step

    def step(self: Trainer) -> torch.Tensor:
        if self.iteration + 1 == iteration:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)
        return original(self)

    monkeypatch.setattr(Trainer, "step", step)


def test_sigterm_preempts_the_warm_cell_and_the_next_agent_resumes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_sweep(tmp_path, {"pruner.fraction": {"values": [0.6]}}, [*TINY, "pruner=gmp"]))
    runner = CellRunner()
    whole = runner.run(cell_argv(spec, {"pruner.fraction": 0.6}), tmp_path / "whole")  # uninterrupted
    assert whole.status == "finished"
    agent = WarmAgent(spec, runner)
    with monkeypatch.context() as patch:
        _sigterm_at(patch, 10)  # in fine-tuning (the trunk ends at 8)
        code = agent.serve("e/p/s", agent=fake_wandb_agent(tmp_path, [{"pruner.fraction": 0.6}]))
    assert code == 128 + 15 and agent.outcomes[-1].status == "preempted"
    resumed = WarmAgent(spec, runner)
    assert resumed.serve("e/p/s", agent=fake_wandb_agent(tmp_path, [{"pruner.fraction": 0.6}])) == 0
    out = resumed.outcomes[-1].out_dir
    assert json.loads((out / "results.json").read_text())["status"] == "finished"
    wa, wb = _weights(whole.out_dir), _weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_workers_share_a_queue_in_order_and_skip_taken_cells(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = [[*TINY, "pruner=gmp", f"pruner.fraction={f}"] for f in (0.3, 0.6, 0.9)]
    cells[2].append("pruner.fraction=1.5")  # refused: the worker goes on, then exits 1
    queue = tmp_path / "sweep" / warm_local.QUEUE
    queue.parent.mkdir()
    queue.write_text(json.dumps({"cells": cells}))
    assert warm_local.take(queue.parent / "0")  # another worker has cell 0
    assert not warm_local.take(queue.parent / "0")
    assert warm_local.work(queue, CellRunner()) == 1
    assert [p.parent.name for p in queue.parent.glob("*/results.json")] == ["1"]
    assert json.loads((queue.parent / "1" / "results.json").read_text())["metrics"]["mask/fraction"] == 0.6
    assert (queue.parent / "2" / warm_local.TAKEN).exists()


def test_a_sigterm_while_a_cell_writes_its_results_stops_the_worker_before_the_next_cell(tmp_path, monkeypatch):
    """The signal lands after the cell's last step check: the cell still finishes, and the loop starts no more."""
    import koopsweep.train.run as run_module

    monkeypatch.chdir(tmp_path)
    original = run_module.write_json_atomic

    def write_and_get_stopped(path: Path, payload: dict) -> None:
        original(path, payload)
        if path.name == "results.json":
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(run_module, "write_json_atomic", write_and_get_stopped)
    queue = tmp_path / "sweep" / warm_local.QUEUE
    queue.parent.mkdir()
    queue.write_text(json.dumps({"cells": [[*TINY, "pruner=gmp", f"pruner.fraction={f}"] for f in (0.3, 0.6)]}))
    assert warm_local.work(queue, CellRunner()) == 128 + signal.SIGTERM
    assert json.loads((queue.parent / "0" / "results.json").read_text())["status"] == "finished"
    assert not (queue.parent / "1").exists()  # never taken: a later `sweep local --skip-finished` runs it


def test_sweep_local_warm_dry_run_names_the_workers(tmp_path, monkeypatch, capsys):
    from koopsweep.cli import main

    monkeypatch.chdir(tmp_path)
    main(["sweep", "local", "smoke", "--warm", "--jobs", "2", "--threads", "1", "--dry-run"])
    out = capsys.readouterr().out
    assert "-m koopsweep.sweeps.warm_local " in out and "cells.json --jobs 2" in out
    assert "hydra/launcher" not in out


def test_sweep_local_with_one_job_runs_its_cells_in_the_launching_process(tmp_path, monkeypatch, capsys):
    """No second interpreter for one job: the launcher has torch and every cell's config already."""
    from koopsweep.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    path = _sweep(tmp_path, {"pruner.fraction": {"values": [0.5, 0.9]}}, [*TINY, "pruner=gmp"])
    main(["sweep", "local", str(path), "--warm", "--jobs", "1", "--threads", "1", "--wandb", "disabled"])
    assert f"warm worker {os.getpid()} ran 2 cells" in capsys.readouterr().out
    results = tmp_path.glob("outputs/**/results.json")
    assert sorted(json.loads(r.read_text())["metrics"]["mask/fraction"] for r in results) == [0.5, 0.9]
    assert "WANDB_MODE" not in os.environ  # the command's variables were set for its cells only


def test_the_preflight_and_the_cells_after_it_compose_each_group_choice_once(tmp_path, monkeypatch):
    """Hydra's defaults stage (a full compose, ~0.25 s) runs once per group choice for the whole command: the
    preflight's configs serve the cells it then runs in this process."""
    from koopsweep.cli import main
    from koopsweep.config import compose

    monkeypatch.chdir(tmp_path)
    full: list[list[str]] = []
    real = compose.compose_full
    monkeypatch.setattr(
        compose, "compose_full", lambda overrides, *a: full.append(list(overrides)) or real(overrides, *a)
    )
    path = _sweep(tmp_path, {"pruner": {"values": ["gmp", "ggp"]}, "pruner.fraction": {"values": [0.5, 0.9]}})
    main(["sweep", "local", str(path), "--warm", "--jobs", "1", "--threads", "1", "--wandb", "disabled"])
    assert len(list(tmp_path.glob("outputs/**/results.json"))) == 4
    assert sorted(groups[-1] for groups in full) == ["pruner=ggp", "pruner=gmp"]


# --- slow: a subprocess each, or many cells ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_warm_cell_is_bit_identical_to_the_same_cell_in_a_cold_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cell = [*TINY, "pruner=kmp", "pruner.fraction=0.8"]
    env = {**os.environ, "KOOPSWEEP_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cold = tmp_path / "cold"
    subprocess.run([sys.executable, "-m", "koopsweep", *cell, f"hydra.run.dir={cold}"], env=env, check=True)
    runner = CellRunner()
    for other in (["pruner=gmp", "seed=1"], ["pruner=kgp", "precision=fp64"]):
        assert runner.run([*TINY, *other], tmp_path / "other" / other[0]).status == "finished"
    assert runner.run(cell, tmp_path / "warm").status == "finished"
    _same_run(cold, tmp_path / "warm")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_the_warm_agents_memory_does_not_grow_with_the_cells(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CellRunner()
    rss = {}
    for n in range(1, 51):
        pruner = ("gmp", "kmp", "kgp")[n % 3]
        cell = [*TINY, f"pruner={pruner}", f"pruner.fraction={0.3 + 0.01 * n:.2f}", f"seed={n % 2}"]
        assert runner.run(cell, tmp_path / "runs" / str(n)).status == "finished"
        rss[n] = _rss_mib()
    assert rss[50] - rss[10] < 25, rss  # MiB: what the allocator keeps, not what the cells add


@pytest.mark.slow
def test_sweep_local_warm_runs_the_grid_in_workers(tmp_path, monkeypatch):
    from koopsweep.cli import main

    monkeypatch.chdir(tmp_path)
    path = _sweep(tmp_path, {"pruner": {"values": ["kmp", "gmp"]}, "pruner.fraction": {"values": [0.5, 0.9]}})
    main(["sweep", "local", str(path), "--warm", "--jobs", "2", "--threads", "1", "--wandb", "disabled"])
    results = sorted(tmp_path.glob("outputs/multiruns/*/*/*/results.json"))
    assert len(results) == 4
    assert all(json.loads(r.read_text())["status"] == "finished" for r in results)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_editing_conf_while_a_local_grid_runs_reaches_none_of_its_cells(tmp_path, monkeypatch, warm):
    """`sweep local` pins a private copy of conf/ for its cells: an edit made after the launch changes nothing."""
    import shutil

    from koopsweep.cli import main
    from koopsweep.config import CONF_DIR_ENV, conf_dir
    from koopsweep.sweeps import launch as launching

    monkeypatch.chdir(tmp_path)
    checkout = tmp_path / "checkout" / "conf"  # stands for the conf/ of an editable install
    shutil.copytree(conf_dir(), checkout)
    monkeypatch.setenv(CONF_DIR_ENV, str(checkout))
    seen: list[Path] = []

    def edit_then_run(launch, here=None, real=launching.run):
        pinned = Path(os.environ[CONF_DIR_ENV])
        seen.append(pinned)
        assert pinned != checkout and oct(pinned.parent.stat().st_mode & 0o777) == "0o700"  # only this user reads it
        dataset = checkout / "dataset" / "synthetic.yaml"
        dataset.write_text(dataset.read_text().replace("eval_batch_size: 256", "eval_batch_size: 32"))
        return real(launch, here)

    monkeypatch.setattr(launching, "run", edit_then_run)
    monkeypatch.setattr(warm_local, "run_launch", edit_then_run)
    path = _sweep(tmp_path, {"pruner.fraction": {"values": [0.5]}}, [*TINY, "pruner=gmp"])
    main(["sweep", "local", str(path), "--threads", "1", "--wandb", "disabled", *(["--warm"] if warm else [])])
    (config,) = tmp_path.glob("outputs/multiruns/*/*/*/.hydra/config.yaml")
    assert yaml.safe_load(config.read_text())["dataset"]["eval_batch_size"] == 256  # as launched
    assert "eval_batch_size: 32" in (checkout / "dataset" / "synthetic.yaml").read_text()  # the edit is there
    assert os.environ[CONF_DIR_ENV] == str(checkout) and not seen[0].exists()  # restored, the copy removed


def test_skip_finished_leaves_out_only_the_cells_an_earlier_multirun_finished(tmp_path, monkeypatch, capsys):
    from koopsweep.cli import main
    from koopsweep.sweeps.launch import local_launch

    monkeypatch.chdir(tmp_path)
    path = _sweep(tmp_path, {"pruner": {"values": ["kmp", "gmp"]}, "pruner.fraction": {"values": [0.5, 0.9]}})
    first = local_launch(path, threads=1, wandb_mode="disabled", warm=True)
    order = first.plan.launch_order()
    runner = CellRunner()
    for number, point in enumerate(order[:2]):  # an earlier multirun stopped after two cells
        assert runner.run(point.argv, first.sweep_dir / str(number)).status == "finished"
    (first.sweep_dir / "2").mkdir()
    (first.sweep_dir / "2" / "results.json").write_text('{"status": "fini')  # cut short: not finished

    again = local_launch(path, threads=1, wandb_mode="disabled", warm=True, skip_finished=True)
    assert set(again.finished) == {tuple(p.argv) for p in order[:2]} and again.runs == 2
    queue = json.loads(warm_local.write_queue(warm_local.warm(again, 1)).read_text())["cells"]
    assert queue == [p.argv for p in order[2:]]

    main(["sweep", "local", str(path), "--skip-finished", "--threads", "1", "--wandb", "disabled", "--dry-run"])
    out = capsys.readouterr().out
    assert "2 of 4 cells already finished: skipped" in out and "koopsweep.sweeps.warm_local" in out


def test_a_finished_run_of_an_older_version_is_the_same_cell_unless_a_shared_setting_differs() -> None:
    from koopsweep.sweeps.finished import same_cell, settings

    now = settings({"seed": 0, "koopman": {"window": "1ep", "max_rank": 0}, "threads": 2, "paths": {"root": "/a"}})
    older = settings({"seed": 0, "koopman": {"window": "1ep"}, "threads": 1, "paths": {"root": "/b"}})
    assert "threads" not in now and "paths.root" not in now
    assert same_cell(now, older)  # max_rank came later, with its default; threads and paths never count
    assert not same_cell(now, settings({"seed": 0, "koopman": {"window": "2ep"}}))
