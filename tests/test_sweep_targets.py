"""Issue 23, item 7: ``_target_`` values a W&B sweep sets are allowed, not trusted; refused before any import."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from koopsweep.cli import main
from koopsweep.config import targets
from koopsweep.config.targets import check_sweep_targets
from koopsweep.errors import ConfigError
from koopsweep.sweeps.spec import load_spec
from koopsweep.sweeps.warm_agent import WarmAgent

REPO = Path(__file__).resolve().parent.parent
PLANTED = "planted_by_a_sweep"


@pytest.mark.parametrize(
    "override",
    [
        "model._target_=koopsweep.models.MnistNet",
        "dataset.source._target_=koopsweep.data.synthetic.make_synthetic",
        "pruner._target_=koopsweep.prune.scorers.MagnitudeScorer",
        "optimizer._target_=torch.optim.AdamW",
        "model=resnet20",
        "pruner.fraction=0.5",
        "experiment=smoke",
    ],
)
def test_koopsweeps_own_targets_and_plain_values_pass(override: str) -> None:
    check_sweep_targets([override])


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("model._target_=os.system", "'os.system' is none of koopsweep's models"),
        ("+dataset.source._target_=builtins.eval", "'builtins.eval' is none of"),
        ("pruner._target_=koopsweep.prune.scorers.os.system", "is none of"),
        ("optimizer._target_=torch.optim.lr_scheduler.LambdaLR", "is none of"),
        ("model={_target_:os.system,name:x}", "'os.system' is none of"),
        ("hydra.callbacks.x._target_=os.system", "Hydra's own settings"),
        ("hydra.searchpath=[pkg://antigravity]", "Hydra's own settings"),
        ("logger.notes=${oc.env:WANDB_API_KEY}", "may not interpolate"),
        ("--config-dir=/tmp", "may not choose config folders"),
        ("model._target_=os.system,koopsweep.models.MnistNet", "one value per key"),
    ],
)
def test_anything_else_a_sweep_names_is_refused_in_one_line(override: str, why: str) -> None:
    with pytest.raises(ConfigError, match="the sweep's .* is refused") as refused:
        check_sweep_targets(["logger=none", override])
    assert why in str(refused.value) and "\n" not in str(refused.value)


def test_the_local_config_allows_its_own_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "local_dir", lambda: tmp_path)
    (tmp_path / "allowed_targets.txt").write_text("my_pkg.MyNet  # our model\n\n")
    (tmp_path / "default.yaml").write_text("pruner:\n  _target_: my_pkg.MyScorer\n")
    check_sweep_targets(["model._target_=my_pkg.MyNet", "pruner._target_=my_pkg.MyScorer"])
    with pytest.raises(ConfigError, match="conf/local/allowed_targets.txt"):
        check_sweep_targets(["model._target_=my_pkg.Other"])


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module that leaves a mark when imported, and os.system replaced by a recorder: nothing may touch either."""
    (tmp_path / f"{PLANTED}.py").write_text(
        f"from pathlib import Path\nPath({str(tmp_path / 'imported')!r}).touch()\ndef boom(*a, **k):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    monkeypatch.setattr(targets, "local_dir", lambda: tmp_path / "no-local-config")
    yield tmp_path / "imported"
    assert calls == [], "os.system was called"
    assert PLANTED not in sys.modules


def _fake_wandb_agent(tmp_path: Path, points: list[dict]):
    """wandb.agent(sweep, function=f) as W&B's in-process agent runs it: each run's config in the file named by
    WANDB_SWEEP_PARAM_PATH, WANDB_SWEEP_ID and WANDB_RUN_ID set, the function called in a thread of its own."""

    def agent(sweep_id: str, function, count: int | None = None) -> None:
        for number, point in enumerate(points):
            path = tmp_path / f"config-run{number}.yaml"
            path.write_text(yaml.safe_dump({k: {"value": v} for k, v in point.items()}))
            os.environ.update(WANDB_SWEEP_PARAM_PATH=str(path), WANDB_SWEEP_ID=sweep_id, WANDB_RUN_ID=f"r{number}")
            thread = threading.Thread(target=function)
            thread.start()
            thread.join()
            for name in ("WANDB_SWEEP_PARAM_PATH", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
                os.environ.pop(name, None)

    return agent


def test_an_agent_on_a_sweep_that_names_os_system_runs_nothing(tmp_path, planted, monkeypatch, capsys) -> None:
    """koopsweep agent (warm, W&B's in-process agent) on a sweep whose points name os.system and a planted module:
    every point is refused in one line and failed on W&B; nothing is imported, called, composed or trained."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    command = ["${env}", "koopsweep", "logger=none", "${args_no_hyphens}"]
    parameters = {"model._target_": {"values": ["os.system"]}}
    sweep.write_text(yaml.safe_dump({"method": "grid", "parameters": parameters, "command": command}))
    failed: list[str] = []
    monkeypatch.setattr("koopsweep.sweeps.warm_agent._fail_unstarted", failed.append)
    points = [
        {"model._target_": "os.system"},
        {"dataset.source._target_": "os.system"},
        {"pruner._target_": f"{PLANTED}.boom"},
        {"optimizer._target_": f"{PLANTED}.boom"},
    ]
    agent = WarmAgent(load_spec(sweep))
    assert agent.serve("ent/proj/abc", agent=_fake_wandb_agent(tmp_path, points)) == 0
    assert [o.status for o in agent.outcomes] == ["rejected"] * 4
    refused = [line for line in capsys.readouterr().err.splitlines() if line.startswith("koopsweep: error:")]
    assert len(refused) == 4 and all("is refused" in line for line in refused)
    assert len(failed) == 4  # each W&B run finished failed, with the reason
    assert not planted.exists() and not (tmp_path / "outputs").exists()


def test_a_cold_agents_run_that_names_a_foreign_target_is_one_line(tmp_path, planted, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")  # what `wandb agent` sets for the runs it starts
    with pytest.raises(SystemExit) as exit_info:
        main(["logger=none", f"model._target_={PLANTED}.boom"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"koopsweep: error: the sweep's 'model._target_={PLANTED}.boom' is refused")
    assert err.count("\n") == 1 and not planted.exists()


@pytest.mark.slow
def test_wandbs_own_agent_process_runs_nothing_a_sweep_names(tmp_path: Path) -> None:
    """W&B's real agent (wandb_agent.Agent) starts the sweep's command for a run naming a planted module: the run
    exits 2 with one line and the module is never imported."""
    (tmp_path / f"{PLANTED}.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nboom = print\n")
    script = f"""
import os, sys
from wandb.wandb_agent import Agent
os.environ["WANDB_SWEEP_ID"] = "abc123"
agent = Agent(api=None, queue=None, sweep_id="abc123")
agent._sweep_command = ["${{env}}", sys.executable, "-m", "koopsweep", "logger=none", "${{args_no_hyphens}}"]
agent._command_run({{"type": "run", "run_id": "r1", "program": "koopsweep",
                    "args": {{"model._target_": {{"value": "{PLANTED}.boom"}}}}}})
sys.exit(agent._run_processes["r1"].wait(timeout=120))
"""
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "WANDB_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert f"koopsweep: error: the sweep's 'model._target_={PLANTED}.boom' is refused" in done.stderr
    assert not (tmp_path / "imported").exists()
