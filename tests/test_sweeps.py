"""Sweep files: each validates at every grid point, expands as W&B does, equals its Hydra multirun, and launches.

Composing costs ~0.15 s a point, so the fast tests compose every point through koopsweep.sweeps.points (Hydra's
own two-step composition, checked against full composition here) and feed the agent's argv to `cli.preflight` for
a sample covering every value of every parameter; the slow tests preflight every point and run the smoke sweep.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from koopsweep.cli import main, preflight
from koopsweep.config.compose import compose_config, expand_overrides
from koopsweep.errors import ConfigError
from koopsweep.sweeps import launch as launching
from koopsweep.sweeps.agent_command import agent_command, app_argv
from koopsweep.sweeps.grid import PRUNE_AT, parsed_point, step_key, value_hash, wandb_grid
from koopsweep.sweeps.plan import SweepPlan, plan_sweep
from koopsweep.sweeps.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
# runs, trunks
EXPECTED = {
    "smoke": (8, 1),
    "converged_mnistnet": (36, 3),
    "converged_resnet20": (36, 3),
    "timing_kmp": (324, 3),
    "timing_kgp": (324, 3),
    "fig1_mnistnet": (72, 3),
    "fig1_mnistnet_long": (72, 3),
    "fig1_resnet20": (72, 3),
    "fig1_resnet56": (72, 3),
    "converged_resnet20_cpu": (48, 2),
    "fig1_mnistnet_cluster": (18, 3),
    "fig1_resnet20_cluster": (18, 3),
    "timing_resnet20": (144, 2),
    "fcn_width": (30, 30),
}
TRUNK_KEYS = {"fcn_width": ["model.kwargs.hidden", "seed"]}  # sweeps whose dense runs differ in more than the seed
SHARED_DATA = REPO.parent / "shared" / "data"  # the Fig. 1 sweeps start from ShrinkBench's weights, found here
# Without those files (a checkout without ../shared/data, offline) the Fig. 1 sweeps cannot resolve their trunks'
# weights, so they are planned only where the weights are.
HAS_WEIGHTS = (SHARED_DATA / "shrinkbench-models").is_dir()
PLANNED = {name: counts for name, counts in EXPECTED.items() if HAS_WEIGHTS or not name.startswith("fig1_")}
# Planning composes every point (~0.05-0.1 s each): the fast suite plans the paper's original sweeps, one Fig. 1
# sweep and the FCN study; the variants of the same files (same experiments, other grids) are planned by the slow
# test below.
SLOW_PLANS = {
    "fig1_mnistnet_long", "fig1_resnet20", "fig1_resnet56", "fig1_mnistnet_cluster", "fig1_resnet20_cluster",
    "converged_resnet20_cpu", "timing_resnet20",
}  # fmt: skip
FAST = {name: counts for name, counts in PLANNED.items() if name not in SLOW_PLANS}


@pytest.fixture(autouse=True)
def _shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOOPSWEEP_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SweepPlan]:
    """Every sweep file planned once for the module (validation composes every point)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOOPSWEEP_ROOT", str(tmp_path_factory.mktemp("root")))
        mp.setenv("WANDB_MODE", "disabled")
        mp.setenv("KOOPSWEEP_DATA_DIR", str(SHARED_DATA))
        return {path.stem: plan_sweep(path) for path in SWEEPS if path.stem in FAST}


def covering_sample(plan: SweepPlan) -> list[dict]:
    """A few points that together use every value of every parameter (the diagonal of the grid)."""
    params = plan.spec.parameters
    width = max(len(v) for v in params.values())
    wanted = [{k: v[i % len(v)] for k, v in params.items()} for i in range(width)]
    return [p.values for p in plan.points if p.values in wanted]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


GOOD = """
method: grid
parameters:
  pruner.fraction: {values: [0.5, 0.9]}
  schedule.prune_at: {values: [20it, 40it]}
command: ["${env}", "koopsweep", "experiment=smoke_sweep", "${args_no_hyphens}"]
"""


# -- the sweep files ---------------------------------------------------------------------------------------------


def test_every_experiment_has_a_sweep_file():
    assert {p.stem for p in SWEEPS} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(FAST))
def test_sweep_file_validates_with_expected_runs_and_trunks(plans, name):
    check_plan(plans[name], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(PLANNED) & SLOW_PLANS))
def test_the_variant_sweep_files_validate_with_expected_runs_and_trunks(name, monkeypatch, tmp_path):
    monkeypatch.setenv("KOOPSWEEP_ROOT", str(tmp_path))
    check_plan(plan_sweep(REPO / "sweeps" / f"{name}.yaml"), name)


def check_plan(plan: SweepPlan, name: str) -> None:
    """The file's grid composed at every point: its size, its trunks, its own values in every config."""
    runs, trunks = PLANNED[name]
    assert len(plan.points) == runs == math.prod(len(v) for v in plan.spec.parameters.values())
    assert len(plan.trunks) == trunks
    assert plan.trunk_keys == TRUNK_KEYS.get(name, ["seed"] if trunks > 1 else [])
    raw = yaml.safe_load((REPO / "sweeps" / f"{name}.yaml").read_text())
    assert raw["method"] == "grid" and raw["command"][:2] == ["${env}", "koopsweep"]
    assert "${args_no_hyphens}" in raw["command"]
    for point in plan.points:  # the sweep's own values reached the composed config
        for key, value in point.values.items():
            if key == "pruner":
                assert point.cfg.pruner.name == value
            else:
                assert OmegaConf.select(point.cfg, key) == value


def test_paper_sweeps_use_the_paper_grid(plans):
    """ShrinkBench's compression axis 2 ... 64x, and pruning times over the whole approach to convergence."""
    for name, pruners in (
        ("converged_mnistnet", {"kmp", "gmp"}),
        ("converged_resnet20", {"kmp", "gmp"}),
        ("timing_kmp", {"kmp", "gmp"}),
        ("timing_kgp", {"kgp", "ggp"}),
    ):
        params = plans[name].spec.parameters
        assert set(params["pruner"]) == pruners and params["pruner.compression"] == [2, 4, 8, 16, 32, 64]
    assert plans["converged_mnistnet"].points[0].cfg.model.name == "mnistnet"
    assert plans["converged_resnet20"].points[0].cfg.model.name == "resnet20"
    assert all(
        p.cfg.schedule.prune_at is None for n in ("converged_mnistnet", "converged_resnet20") for p in plans[n].points
    )
    for name in ("timing_kmp", "timing_kgp"):
        times = plans[name].spec.parameters[PRUNE_AT]
        assert times == sorted(times, key=step_key) and times[0] == "50it" and times[-1] == "20ep"
        assert len(times) >= 8 and plans[name].points[0].cfg.schedule.train == times[-1]  # to the end of training


def test_mnist_sweeps_share_their_trunks(plans):
    """converged_mnistnet, timing_kmp and timing_kgp train each seed's dense MnistNet once between them."""
    trunks = [set(plans[n].trunks) for n in ("converged_mnistnet", "timing_kmp", "timing_kgp")]
    assert trunks[0] == trunks[1] == trunks[2]
    assert not set(plans["converged_resnet20"].trunks) & trunks[0]


def test_fast_composition_equals_full_composition(plans):
    points = plans["smoke"].points + [plans[n].points[i] for n in FAST if n != "smoke" for i in (0, -1)]
    for point in points:
        full = compose_config(point.argv)
        assert OmegaConf.to_container(point.cfg) == OmegaConf.to_container(full), point.argv


# -- the agent's command line ------------------------------------------------------------------------------------


def test_agent_command_is_what_wandb_builds():
    spec = load_spec(REPO / "sweeps" / "timing_kmp.yaml")
    point = {"pruner": "kmp", "pruner.compression": 64, PRUNE_AT: "1ep200it", "seed": 2}
    expected = ["koopsweep", "experiment=timing_mnistnet", "experiment_name=timing_kmp"]
    expected += ["pruner=kmp", "pruner.compression=64", "schedule.prune_at=1ep200it", "seed=2"]
    assert agent_command(spec, point, use_wandb=True) == ["/usr/bin/env", *expected]
    assert agent_command(spec, point) == agent_command(spec, point, use_wandb=True)
    assert app_argv(spec, point) == expected[1:]
    assert app_argv(spec, point, use_wandb=True) == expected[1:]


def test_agent_macros_match_wandb_for_every_point(plans):
    for plan in plans.values():
        for point in plan.points:
            assert agent_command(plan.spec, point.values) == agent_command(plan.spec, point.values, use_wandb=True)


@pytest.mark.parametrize("name", sorted(FAST))
def test_agent_argv_is_accepted_by_the_app(plans, name):
    plan = plans[name]
    sample = plan.points if name == "smoke" else [p for p in plan.points if p.values in covering_sample(plan)]
    assert {k for p in sample for k in p.values.items()} == {
        (k, v) for k, vs in plan.spec.parameters.items() for v in vs
    }
    for point in sample:
        assert preflight(app_argv(plan.spec, point.values)) == 1


# -- W&B's grid engine and Hydra's multirun ----------------------------------------------------------------------


def test_wandb_grid_documented_order_and_dedup():
    """Sorted names, first name slowest, repeats dropped by YAML hash (1 == 1.0, the last listed kept)."""
    grid = wandb_grid({"b": [1, 2], "a": ["x", "y"], "c": [3]})
    assert [list(p.items()) for p in grid] == [
        [("a", "x"), ("b", 1), ("c", 3)],
        [("a", "x"), ("b", 2), ("c", 3)],
        [("a", "y"), ("b", 1), ("c", 3)],
        [("a", "y"), ("b", 2), ("c", 3)],
    ]
    assert wandb_grid({"s": [0, 1.0, 1]}) == [{"s": 0}, {"s": 1}]
    assert type(wandb_grid({"s": [1, 1.0]})[0]["s"]) is float
    assert value_hash(True) != value_hash(1) and value_hash(3.0) == value_hash(3)


def _wandb_sweeps_engine():
    """The open-source W&B engine (pins numpy < 2, so never a dependency): from KOOPSWEEP_WANDB_SWEEPS if set."""
    path = os.environ.get("KOOPSWEEP_WANDB_SWEEPS")
    if path:
        sys.path.insert(0, path)
    try:
        from sweeps.grid_search import grid_search_next_runs
    except Exception:
        pytest.skip(
            "W&B's `sweeps` engine not importable (pip install --target DIR sweeps ...; KOOPSWEEP_WANDB_SWEEPS=DIR)"
        )
    finally:
        if path:
            sys.path.remove(path)
    return grid_search_next_runs


def test_wandb_grid_equals_wandb_engine(plans):
    engine = _wandb_sweeps_engine()
    cases = [plan.spec.parameters for plan in plans.values()]
    cases += [{"z": [2.0, 2], "A": ["q"], "a": [0.1, 0.2, 0.1]}, {"x": [True, 1, 1.0, "1"], "y": [False, 0]}]
    for params in cases:
        config = {"method": "grid", "parameters": {k: {"values": list(v)} for k, v in params.items()}}
        runs = engine([], config, n=10_000)
        theirs = [{k: v["value"] for k, v in run.config.items()} for run in runs if run is not None]
        ours = wandb_grid(params)
        assert theirs == ours
        assert [type(v) for p in theirs for v in p.values()] == [type(v) for p in ours for v in p.values()]


@pytest.mark.parametrize("name", sorted(FAST))
def test_hydra_multirun_equals_wandb_grid_trunks_first(plans, name):
    plan = plans[name]
    jobs = [parsed_point(job) for job in plan.jobs()]
    assert Counter(jobs) == Counter(parsed_point(p.argv) for p in plan.points)
    order = plan.launch_order()
    trunks = plan.trunks
    assert {p.trunk for p in order[: len(trunks)]} == set(trunks)  # every trunk's first job before any second one
    for trunk in trunks:
        times = [step_key(p.cfg.schedule.prune_at or "999999ep") for p in order if p.trunk == trunk]
        assert times == sorted(times)  # earliest pruning time first
    for (_, a), (_, b) in itertools.pairwise(enumerate(order)):  # at each time, Koopman runs (window) first
        if (
            a.trunk == b.trunk
            and a.cfg.schedule.prune_at == b.cfg.schedule.prune_at
            and a.values.get("pruner") != b.values.get("pruner")
        ):
            assert a.needs_window >= b.needs_window


def test_latest_first_reverses_pruning_times(tmp_path):
    plan = plan_sweep(write(tmp_path, GOOD), latest_first=True)
    assert [p.values[PRUNE_AT] for p in plan.launch_order()][:2] == ["40it", "40it"]


# -- bad sweep files: one line each ------------------------------------------------------------------------------

BAD = [
    (GOOD.replace("${args_no_hyphens}", "${args}"), "use ${args_no_hyphens}"),
    (
        GOOD.replace('command: ["${env}", "koopsweep", "experiment=smoke_sweep", "${args_no_hyphens}"]', ""),
        "no command",
    ),
    (GOOD.replace("method: grid", "method: bayes"), "grid sweeps only"),
    (GOOD.replace("method: grid", "method: hyperband"), "W&B knows grid"),
    (GOOD + "controller: {type: local}\n", "unknown sweep key 'controller'"),
    (GOOD.replace("{values: [0.5, 0.9]}", "{values: [0.5, null]}"), "null is passed as the string 'None'"),
    (GOOD.replace("{values: [0.5, 0.9]}", "{values: [[0.5, 0.9]]}"), "not a number, boolean or single word"),
    (
        GOOD.replace("{values: [0.5, 0.9]}", "{distribution: uniform, min: 0.1, max: 0.9}"),
        "not allowed in a grid sweep",
    ),
    (
        GOOD.replace("pruner.fraction: {values: [0.5, 0.9]}", "pruner: {parameters: {fraction: {values: [0.5]}}}"),
        "nested",
    ),
    (GOOD.replace('"experiment=smoke_sweep"', '"pruner.fraction=0.5"'), "both fixed in command and a parameter"),
    (GOOD.replace('"experiment=smoke_sweep"', '"-m"'), "not a Hydra override"),
    (GOOD.replace('"koopsweep"', '"train.py"'), "must run koopsweep"),
    (GOOD.replace("pruner.fraction:", "pruner.fractoin:"), "did you mean 'pruner.fraction'"),
    (GOOD.replace("[0.5, 0.9]", "[0.5, 1.5]"), "pruner.fraction=1.5 is out of range"),
    (GOOD.replace("[20it, 40it]", "[20it, 200it]"), "is after the end of training"),
    (GOOD.replace("experiment=smoke_sweep", "experiment=nope"), "unknown experiment 'nope'"),
    ("method: grid\nparameters: [1, 2]\n", "parameters must be a non-empty mapping"),
    ("method: grid\nparameters: {a: {values: [1]}\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_sweep_file_fails_in_one_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "validate", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("koopsweep: error:"), err


PAST_THE_END_IN_ITERATIONS = """
method: grid
parameters:
  pruner: {values: [gmp, kmp]}
  schedule.prune_at: {values: [50it, 100it]}
command: ["${env}", "koopsweep", "dataset=mnist_mini", "schedule.train=1ep", "${args_no_hyphens}"]
"""


@pytest.mark.parametrize("verb", [["validate"], ["local", "--dry-run"], ["slurm", "--dry-run"]])
def test_sweep_checks_need_the_epoch_length_before_anything_runs(tmp_path, capsys, verb):
    """1ep of mnist_mini is 79 iterations: pruning at 100it is past the end, known without loading the data."""
    path = write(tmp_path, PAST_THE_END_IN_ITERATIONS)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", verb[0], str(path), *verb[1:]])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert (
        "run 2 (pruner=gmp schedule.prune_at=100it): schedule.prune_at=100it (100 it) is after the end of "
        "training (schedule.train=1ep, 79 it at 79 it/epoch)" in err
    )


def test_extra_overrides_are_checked(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="sweeps several values"):
        plan_sweep(path, ["seed=1,2"])
    with pytest.raises(ConfigError, match="which .* sweeps"):
        plan_sweep(path, ["pruner.fraction=0.3"])
    assert {p.cfg.seed for p in plan_sweep(path, ["seed=7"]).points} == {7}


def test_only_runs_a_slice_of_the_grid(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    plan = plan_sweep(path, only=["schedule.prune_at=40it"])
    assert len(plan.points) == 2 and {p.cfg.schedule.prune_at for p in plan.points} == {"40it"}
    with pytest.raises(ConfigError, match="'60it' is not a value of schedule.prune_at"):
        plan_sweep(path, only=["schedule.prune_at=40it,60it"])
    with pytest.raises(ConfigError, match="give KEY=V1,V2 for a swept key"):
        plan_sweep(path, only=["seed=0"])
    main(["sweep", "validate", str(REPO / "sweeps" / "timing_kmp.yaml"), "--only", "seed=0,1", "--only", "pruner=kmp"])
    assert "sweeps/timing_kmp.yaml: 108 runs, 2 trunks" in capsys.readouterr().out


def test_validate_prints_runs_trunks_and_table(capsys):
    main(["sweep", "validate", str(REPO / "sweeps" / "smoke.yaml"), "--list"])
    out = capsys.readouterr().out
    assert "8 runs, 1 trunk" in out and "schedule.prune_at" in out and "launch order" in out
    assert out.count("koopsweep experiment=smoke_sweep") == 8


# -- launching ---------------------------------------------------------------------------------------------------


def test_local_command_and_thread_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(launching, "cores", lambda: 4)
    path = write(tmp_path, GOOD)
    launch = launching.local_launch(path, jobs=2)
    argv = launch.argv
    assert argv[:4] == [sys.executable, "-m", "koopsweep", "-m"]
    assert {"hydra/launcher=local", "hydra.launcher.n_jobs=2", "threads=2", "logger.mode=offline"} <= set(argv)
    assert launch.env == {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert f"hydra.sweep.dir={launch.sweep_dir}" in argv
    single = launching.local_launch(path, jobs=1, wandb_mode="disabled").argv
    assert "threads=4" in single and not any(a.startswith("hydra/launcher") for a in single)
    with pytest.raises(ConfigError, match="oversubscribed"):
        launching.local_launch(path, jobs=3, threads=2)
    with pytest.raises(ConfigError, match="offline or disabled"):
        launching.local_launch(path, wandb_mode="online")
    with pytest.raises(ConfigError, match="set it with --threads"):
        launching.local_launch(path, ["threads=3"])
    config = launching.launcher_config(["hydra/launcher=local", "hydra.launcher.n_jobs=3"])
    assert config._target_.endswith("JoblibLauncher") and config.n_jobs == 3 and config.prefer == "processes"


def test_local_dry_run_prints_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(launching, "cores", lambda: 2)
    main(["sweep", "local", str(write(tmp_path, GOOD)), "--jobs", "2", "--dry-run"])
    out = capsys.readouterr().out
    command = next(line for line in out.splitlines() if line.startswith("command: "))
    assert "WANDB_MODE=offline" in command and " -m koopsweep -m experiment=smoke_sweep " in command
    assert "schedule.prune_at=20it,40it pruner.fraction=0.5,0.9" in command


def test_slurm_dry_run_composes_the_preset(tmp_path, capsys):
    path = str(write(tmp_path, GOOD))
    main(["sweep", "slurm", path, "--partition", "gpu", "--time", "90", "--gpus", "2", "--cpus", "6", "--dry-run"])
    out = capsys.readouterr().out
    command = next(line for line in out.splitlines() if line.startswith("command: "))
    for part in ("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90"):
        assert part in command
    assert "hydra.launcher.gpus_per_node=2" in command and "threads=6" in command and "logger.mode=auto" in command
    launch = launching.slurm_launch(path, partition="gpu", time_min=90, gpus=2, cpus=6)
    hydra = [a for a in launch.argv if a.startswith(("hydra/launcher=", "hydra.launcher."))]
    config = launching.launcher_config(hydra, launch.plan.points[0].argv)
    assert config._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (config.partition, config.timeout_min, config.gpus_per_node, config.cpus_per_task) == ("gpu", 90, 2, 6)
    assert config.mem_gb == 16 and config.array_parallelism == 64 and "timeout_min: 90" in out
    preset = launching.launcher_config(["hydra/launcher=slurm"])
    assert (preset.partition, preset.timeout_min, preset.gpus_per_node, preset.cpus_per_task) == (None, 240, 1, 4)
    assert "threads=4" in launching.slurm_launch(path).argv


def test_slurm_preset_requeues_timed_out_jobs():
    """Resume is exact, so a job that hits its time limit is resubmitted (submitit's max_num_timeout), not lost."""
    preset = launching.launcher_config(["hydra/launcher=slurm"])
    assert preset.max_num_timeout == 3
    assert launching.launcher_config(["hydra/launcher=slurm", "hydra.launcher.max_num_timeout=1"]).max_num_timeout == 1


def test_slurm_trunks_first_runs_one_job_per_trunk_first(plans, tmp_path, capsys):
    plan = plans["timing_kmp"]
    first = [parsed_point(job) for job in expand_overrides(plan.trunk_overrides(), multirun=True)]
    assert first == [parsed_point(p.argv) for p in plan.launch_order()[: len(plan.trunks)]]
    assert {p.trunk for p in plan.launch_order()[:3]} == set(plan.trunks)
    path = str(REPO / "sweeps" / "converged_mnistnet.yaml")
    main(["sweep", "slurm", path, "--trunks-first", "--dry-run"])
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("command: ")]
    assert len(commands) == 2 and "seed=0,1,2" in commands[0] and "pruner=kmp " in commands[0]
    assert "pruner.compression=2 " in commands[0] and "-trunks " in commands[0] + " "
    assert "pruner=kmp,gmp" in commands[1] and "-trunks" not in commands[1]


def test_slurm_without_sbatch_fails_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(launching.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit):
        main(["sweep", "slurm", str(write(tmp_path, GOOD))])
    assert "sbatch not found" in capsys.readouterr().err


def test_create_offline_gives_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "create", str(REPO / "sweeps" / "smoke.yaml")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "cannot create a W&B sweep offline (WANDB_MODE=disabled)" in err
    assert "koopsweep sweep local" in err
    assert launching.offline_reason({"WANDB_MODE": "offline"}) == "WANDB_MODE=offline"


def test_create_without_api_key_names_the_key(tmp_path):
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("koopsweep.tracking.mode.api_key_source", lambda env=None, **_: None)
        assert "no W&B API key" in launching.offline_reason(env)


# -- slow: every point through the app's own preflight, and the smoke sweep end to end ----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAST))
def test_every_agent_argv_is_accepted_by_the_app(plans, name):
    plan = plans[name]
    for point in plan.points:
        assert preflight(app_argv(plan.spec, point.values)) == 1


@pytest.mark.slow
def test_smoke_sweep_runs_locally(tmp_path, monkeypatch, capsys):
    """8 runs through the joblib launcher: one results.json and one offline W&B run per grid point, one trunk."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    jobs = min(2, launching.cores())
    main(["sweep", "local", str(REPO / "sweeps" / "smoke.yaml"), "--jobs", str(jobs), "--threads", "1"])
    out = capsys.readouterr().out
    assert "8 of 8 runs wrote results.json" in out and "wandb sync" in out
    sweep_dir = Path(out.split("runs wrote results.json under ")[1].split()[0])
    spec = load_spec(REPO / "sweeps" / "smoke.yaml")
    expected = Counter(
        parsed_point(app_argv(spec, p) + ["threads=1", "logger.mode=offline"]) for p in wandb_grid(spec.parameters)
    )
    seen = Counter()
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "finished"
        assert len(list((job / "wandb").glob("offline-run-*/*.wandb"))) == 1
        seen[parsed_point(yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))] += 1
    assert seen == expected
    assert len(list((tmp_path / "store" / "trunks").iterdir())) == 1
