"""Every config option composes and instantiates; bad input stops with one line before anything trains."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_class

from koopsweep.cli import main
from koopsweep.config import conf_dir
from koopsweep.config.compose import compose_config, expand_overrides
from koopsweep.data.synthetic import make_synthetic

CONF = conf_dir()
GROUPS = ["model", "dataset", "optimizer", "schedule", "pruner", "koopman", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_checks(group, option):
    overrides = [f"{group}={option}"]
    if group == "pruner" and option == "none":
        overrides.append("pruner.fraction=0")
    cfg = compose_config(overrides)
    assert cfg[group] is not None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # pretrained weights are found here
    if experiment.startswith("fig1_") and not (shared / "shrinkbench-models").is_dir():
        pytest.skip(f"ShrinkBench's weights are not at {shared} (and cannot be downloaded offline)")
    cfg = compose_config([f"experiment={experiment}", f"paths.data_dir={shared}"])
    assert cfg.experiment_name


@pytest.mark.parametrize("option", options("model"))
def test_every_model_instantiates_on_its_shapes(option):
    cfg = compose_config([f"model={option}"])
    like = "cifar10" if option == "resnet20" else "mnist"
    data = make_synthetic(like=like, train=8, test=8)
    model = get_class(cfg.model._target_)(input_shape=data.input_shape, num_classes=data.num_classes)
    assert model(data.train_x[:4]).shape == (4, 10)
    assert model.get_submodule(model.classifier_name) is not None


@pytest.mark.parametrize("option", [o for o in options("pruner") if o != "none"])
def test_every_pruner_instantiates(option):
    cfg = compose_config([f"pruner={option}"])
    assert hasattr(get_class(cfg.pruner._target_)(), "scores")


BAD_OVERRIDES = [
    (["model=alexnet"], "unknown model 'alexnet': choose one of"),
    (["dataset=imagenet"], "unknown dataset 'imagenet'"),
    (["optimizer.lrr=0.1"], "did you mean 'optimizer.lr'"),
    (["fraction=0.5"], "did you mean 'pruner.fraction'"),
    (["optimizer.lr=fast"], "optimizer.lr"),
    (["pruner.fraction=1.5"], "pruner.fraction=1.5 is out of range"),
    (["pruner.fraction=-0.1"], "pruner.fraction=-0.1 is out of range"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 is out of range"),
    (["schedule.train=3ep", "schedule.prune_at=5ep"], "after the end of training"),
    (["schedule.train=3days"], "schedule.train='3days' is not a step"),
    (["schedule.finetune=1.5ep"], "schedule.finetune='1.5ep' is not a step"),
    (["model._target_=nowhere.Net"], "model._target_='nowhere.Net' cannot be imported"),
    (["optimizer._target_=torch.optim.RMSprob"], "optimizer._target_='torch.optim.RMSprob' cannot be imported"),
    (["optimizer._target_=torch.nn.Linear"], "optimizer._target_=torch.nn.Linear is not a torch.optim.Optimizer"),
    (["logger.mode=loud"], "logger.mode='loud' is not one of"),
    (["device=tpu"], "device='tpu' is not one of"),
    (["pruner=none", "pruner.fraction=0.5"], "removes nothing"),
    (["koopman.rank_tol=2"], "koopman.rank_tol=2.0 is out of range"),
    (["optimizer.lr=0.1,0.2"], "add -m (--multirun)"),
    (["-m", "optimizer.lr=0.1,-1"], "optimizer.lr=-1.0 is out of range"),
    (["seed=[1"], "cannot parse the override 'seed=[1'"),
    (["pruner.fraction=0.5", "pruner.compression=4"], "are both set: give one"),
    (["pruner.compression=0.5"], "pruner.compression=0.5 is out of range"),
    (
        ["model=mnistnet", "pruner.compression=100"],
        "pruner.compression=100 is unreachable for mnistnet: 5,580 of its 431,080 parameters are not prunable and stay "
        "dense, so the largest reachable compression is 77.24x",
    ),
    (["pruner=none", "pruner.compression=2"], "removes nothing"),
    (["dataset.batch_size=20000"], "dataset.batch_size=20000 is larger than the 10,000 training examples"),
    (["dataset.train_size=70000"], "dataset.train_size=70000 but mnist_mini has 10,000 examples"),
    (
        ["schedule.train=1ep", "schedule.prune_at=100it"],
        "schedule.prune_at=100it (100 it) is after the end of training",
    ),
    (["-m", "schedule.train=1ep", "schedule.prune_at=10it,500it"], "schedule.prune_at=500it (500 it) is after"),
    (["schedule.prune_at=1it"], "holds 2 snapshots, fewer than the 3 DMD needs"),
    (["model._target_=collections.OrderedDict"], "model._target_=collections.OrderedDict built a OrderedDict"),
    (["model._target_=koopsweep.steps.Step"], "could not be built as Net(input_shape, num_classes)"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OVERRIDES, ids=[" ".join(a) for a, _ in BAD_OVERRIDES])
def test_bad_input_gets_one_clear_line_before_training(argv, message, capsys, tmp_path: Path):
    with pytest.raises(SystemExit) as exit_info:
        main(["logger=none", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("koopsweep: error: ")
    assert message in err
    assert not (tmp_path / "outputs").exists()  # nothing was started


def test_multirun_expansion_matches_the_cartesian_product():
    jobs = expand_overrides(["pruner.fraction=0.5,0.9", "seed=0,1,2", "model=mnistnet"], multirun=True)
    assert len(jobs) == 6
    assert ["pruner.fraction=0.9", "seed=2", "model=mnistnet"] in jobs


def test_unusable_paths_are_one_line_before_any_data_is_loaded(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("koopsweep.train.session.load_dataset", lambda *a, **k: pytest.fail("data were loaded"))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (f"paths.store_dir={a_file}", f"paths.store_dir={a_file} is not a folder: give a folder"),
        (f"paths.store_dir={a_file}/store", f"is not a folder ({a_file} is a file)"),
        ("paths.store_dir=/proc/koopsweep-store", "paths.store_dir=/proc/koopsweep-store cannot be written"),
        (f"paths.data_dir={a_file}", f"paths.data_dir={a_file} is not a folder"),
    ]
    for override, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["logger=none", override])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "outputs").exists()


def test_runs_started_in_the_same_second_get_their_own_folders(monkeypatch) -> None:
    """Two W&B agents starting in the same second must not share a Hydra run folder (nor two multiruns a sweep dir)."""
    import re

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from koopsweep.config import setup

    setup()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        OmegaConf.register_new_resolver("now", lambda pattern: "2030-01-01_00-00-00", replace=True, use_cache=True)
        cfgs = [compose("config", return_hydra_config=True) for _ in range(2)]
        runs = [str(cfg.hydra.run.dir) for cfg in cfgs]
        sweeps = [str(cfg.hydra.sweep.dir) for cfg in cfgs]
    assert all(re.search(r"/2030-01-01_00-00-00-[0-9a-f]{6}$", d) for d in runs + sweeps), runs + sweeps
    assert runs[0] != runs[1] and sweeps[0] != sweeps[1]
    assert str(cfgs[0].hydra.run.dir) == runs[0]  # resolved once per config: the job's folder does not move


# compose_config caches the defaults-list stage by group choices (koopsweep.config.compose.Composer): identical to
# Hydra composing each config from scratch, whatever mix of groups, values and additions a call gives (a deletion
# is refused the same way: below).
EQUIVALENT_OVERRIDES = [
    [],
    ["model=mnistnet", "pruner=kmp", "pruner.compression=16"],
    ["pruner.compression=16", "pruner=kmp", "model=mnistnet"],  # groups after values: Hydra applies groups first
    ["experiment=fig1_resnet20", "seed=2", "schedule.finetune=0it"],
    ["model=lenet_300_100", "+extra_note=hello"],
    ["optimizer=sgd", "optimizer.lr=0.05", "optimizer.lr=0.02"],  # the last value wins, as in Hydra
    ["pruner=gmp", "hydra.job.name=ignored"],
]


@pytest.mark.parametrize("overrides", EQUIVALENT_OVERRIDES, ids=lambda o: " ".join(o) or "defaults")
def test_compose_config_is_hydras_full_compose(overrides: list[str]) -> None:
    from omegaconf import OmegaConf

    from koopsweep.config.compose import Composer

    cached = [compose_config(overrides, check=False) for _ in range(2)]  # the second from the cache
    full = Composer(exact=True).compose(overrides, check=False)
    for cfg in cached:
        assert OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(full)
    cached[0].seed = 1234  # a served config is the caller's own: changing it changes no later compose
    assert compose_config(overrides, check=False).seed == full.seed


@pytest.mark.parametrize("overrides", [["optimizer.lrr=0.1"], ["pruner=kmp", "~koopman.cluster_radius"], ["seed=x"]])
def test_compose_config_refuses_as_hydras_full_compose(overrides: list[str]) -> None:
    from koopsweep.config.compose import Composer
    from koopsweep.errors import ConfigError

    with pytest.raises(ConfigError) as full:
        Composer(exact=True).compose(overrides)
    with pytest.raises(ConfigError) as cached:
        compose_config(overrides)
    assert str(cached.value) == str(full.value) and "\n" not in str(full.value)


def test_compose_config_sees_an_edited_config_file(tmp_path: Path, monkeypatch) -> None:
    import os
    import shutil

    from koopsweep.config import CONF_DIR_ENV

    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf)
    monkeypatch.setenv(CONF_DIR_ENV, str(conf))
    assert compose_config(["pruner=gmp"], check=False).pruner.batches == 1
    path = conf / "pruner" / "gmp.yaml"
    path.write_text(path.read_text() + "\nbatches: 3\n")
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))  # a new mtime even on a file system with coarse timestamps
    assert compose_config(["pruner=gmp"], check=False).pruner.batches == 3
