"""A finished run's masks.pt, and `koopsweep export` in each format, read back with plain PyTorch (one small run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY
from hydra.utils import get_class
from torch.nn.utils import prune

from koopsweep.cli import main as cli
from koopsweep.prune.export import load_prune_layout


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One GMP run of MnistNet at 80 % (a few seconds): its folder and results."""
    from omegaconf import open_dict

    from koopsweep.config.compose import compose_config
    from koopsweep.train.run import run_experiment

    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOOPSWEEP_ROOT", str(root))
        mp.setenv("WANDB_MODE", "disabled")
        cfg = compose_config(["logger=none", "threads=1", "model=mnistnet", "pruner=gmp", "pruner.fraction=0.8", *TINY])
        with open_dict(cfg):
            cfg.paths.output_dir = str(root / "run")
        results = run_experiment(cfg)
    return root / "run", results


def fresh_model(results: dict) -> torch.nn.Module:
    cfg = results["config"]
    return get_class(cfg["model"]["_target_"])(input_shape=(1, 28, 28), num_classes=10)


def export(run: Path, fmt: str, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, torch.Tensor]:
    cli(["export", str(run), "--format", fmt, "--out", str(out)])
    assert capsys.readouterr().out.startswith(f"wrote {out} ({fmt}:")
    return torch.load(out, weights_only=True)


def test_a_finished_run_writes_its_masks_by_parameter_name(finished: tuple[Path, dict]) -> None:
    from koopsweep.artifacts import load_checked, read_meta

    run, results = finished
    masks = load_checked(run / "masks.pt")
    assert list(masks) == ["conv1.weight", "conv2.weight", "fc1.weight"]  # the classifier stays dense
    assert all(m.dtype == torch.bool for m in masks.values())
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == round(0.8 * results["metrics"]["params/prunable"])
    assert read_meta(run / "masks.pt")["format"] == "koopsweep-masks"
    weights = load_checked(run / "model.pt")
    assert all(bool((weights[name][~mask] == 0).all()) for name, mask in masks.items())


def test_dense_export_loads_into_a_fresh_model_and_scores_the_runs_accuracy(
    finished: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from koopsweep.data import load_dataset
    from koopsweep.train.loop import evaluate

    run, results = finished
    model = fresh_model(results)
    model.load_state_dict(export(run, "dense", tmp_path / "dense.pt", capsys))
    cfg = results["config"]
    data = load_dataset(cfg["dataset"]["source"], Path(cfg["paths"]["data_dir"]))
    data = data.subset(cfg["dataset"]["train_size"], cfg["dataset"]["test_size"], seed=cfg["seed"])
    test = evaluate(model, data.test_x, data.test_y, cfg["dataset"]["eval_batch_size"])
    assert test["acc"] == results["metrics"]["final/test_acc"]
    assert test["loss"] == results["metrics"]["final/test_loss"]


def test_prune_export_is_torch_prunes_layout(
    finished: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, results = finished
    state = export(run, "prune", tmp_path / "prune.pt", capsys)
    dense = export(run, "dense", tmp_path / "dense.pt", capsys)
    assert {"conv1.weight_orig", "conv1.weight_mask", "fc1.weight_mask", "fc2.weight"} <= set(state)
    assert "conv1.weight" not in state and "fc2.weight_mask" not in state
    # the layout torch.nn.utils.prune itself gives a model pruned with these masks
    reference = fresh_model(results)
    for name in ("conv1", "conv2", "fc1"):
        prune.custom_from_mask(reference.get_submodule(name), "weight", state[f"{name}.weight_mask"])
    assert set(reference.state_dict()) == set(state)
    assert all(reference.state_dict()[k].dtype == v.dtype for k, v in state.items())

    model = load_prune_layout(fresh_model(results), state)
    x = torch.randn(8, 1, 28, 28)
    plain = fresh_model(results)
    plain.load_state_dict(dense)
    assert torch.equal(model(x), plain(x))
    zeros = sum(float((model.get_submodule(n).weight == 0).sum()) for n in ("conv1", "conv2", "fc1"))
    assert zeros == round(0.8 * results["metrics"]["params/prunable"])  # sparsity counted the usual way
    # a further global_unstructured step keeps the old zeros and removes more
    names = ("conv1", "conv2", "fc1")
    params = [(model.get_submodule(n), "weight") for n in names]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    for name, (module, _) in zip(names, params):
        assert bool((module.weight_mask <= state[f"{name}.weight_mask"]).all())
        prune.remove(module, "weight")
    assert sum(float((m.weight == 0).sum()) for m, _ in params) > zeros


def test_masks_export_is_bool_masks_by_name(
    finished: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from koopsweep.artifacts import load_checked

    run, results = finished
    masks = export(run, "masks", tmp_path / "masks.pt", capsys)
    stored = load_checked(run / "masks.pt")
    assert list(masks) == list(stored) and all(torch.equal(masks[k], stored[k]) for k in stored)
    model = fresh_model(results)
    for name, mask in masks.items():
        prune.custom_from_mask(model.get_submodule(name.rpartition(".")[0]), "weight", mask)
    assert float((model.fc1.weight == 0).sum()) >= float((~masks["fc1.weight"]).sum())


def test_default_output_is_inside_the_run_folder(
    finished: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = finished
    copy = tmp_path / "copied"
    shutil.copytree(run, copy)  # a run folder copied elsewhere exports the same
    cli(["export", str(copy / "results.json")])
    assert (copy / "export" / "prune.pt").is_file() and "prune:" in capsys.readouterr().out


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("koopsweep: error: ") and out.out == "", out
    return lines[0]


def test_every_bad_input_is_one_line(
    finished: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = finished
    assert "invalid choice: 'onnx'" in one_line_error(["export", str(run), "--format", "onnx"], capsys)
    assert "does not exist" in one_line_error(["export", str(tmp_path / "nowhere")], capsys)
    assert "holds no results.json" in one_line_error(["export", str(tmp_path)], capsys)

    def broken(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(run, copy)
        return copy

    never = broken("never")
    record = json.loads((never / "results.json").read_text())
    (never / "results.json").write_text(json.dumps({**record, "pruner": "none"}))
    assert "never pruned" in one_line_error(["export", str(never)], capsys)
    stopped = broken("stopped")
    (stopped / "results.json").write_text(json.dumps({**record, "status": "preempted"}))
    assert "preempted, not finished" in one_line_error(["export", str(stopped)], capsys)
    missing = broken("missing")
    (missing / "masks.pt").unlink()
    assert "masks.pt is missing" in one_line_error(["export", str(missing)], capsys)
    corrupt = broken("corrupt")
    data = bytearray((corrupt / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "model.pt").write_bytes(bytes(data))
    assert "checksum mismatch" in one_line_error(["export", str(corrupt), "--format", "dense"], capsys)
    assert not (corrupt / "export").exists()
