"""Pretrained starting points: ShrinkBench's files found offline, checked, mapped and loaded strictly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from koopsweep.errors import ConfigError
from koopsweep.models import MnistNet, ResNet20, ResNet56
from koopsweep.models import pretrained as pre
from koopsweep.models.pretrained import SHRINKBENCH, load_pretrained, resolve_weights

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MODELS = SHARED / "shrinkbench-models"
needs_models = pytest.mark.skipif(not MODELS.is_dir(), reason=f"ShrinkBench's weights not present at {MODELS}")
needs_mnist = pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="real MNIST not present")


@needs_models
@pytest.mark.parametrize(("model", "name"), [(MnistNet, "mnistnet"), (ResNet20, "resnet20"), (ResNet56, "resnet56")])
def test_shrinkbench_weights_are_found_offline_checked_and_loaded_strictly(model, name: str, tmp_path: Path) -> None:
    path, sha = resolve_weights("shrinkbench", name, SHARED, None, tmp_path / "cache")
    assert sha == SHRINKBENCH[name].sha256 and path.is_relative_to(SHARED)
    net = model()
    load_pretrained(net, path)
    shipped = pre.to_model_layout(pre.read_state_dict(path), net)
    for key, tensor in net.state_dict().items():  # every tensor is the file's, under koopsweep's name
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(tensor, shipped[key]), key
    assert not list((tmp_path / "cache").rglob("*"))  # found, so nothing downloaded


@needs_models
def test_a_damaged_file_is_refused_and_weights_of_another_model_named(tmp_path: Path) -> None:
    target = tmp_path / "weights" / "cifar10" / "resnet20.th"
    target.parent.mkdir(parents=True)
    data = bytearray((MODELS / "cifar10" / "resnet20.th").read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="does not match its published sha256"):
        resolve_weights("shrinkbench", "resnet20", SHARED, tmp_path / "weights", tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"missing \['layer1.0.conv1.weight'|missing .*layer"):
        load_pretrained(ResNet56(), MODELS / "cifar10" / "resnet20.th")
    with pytest.raises(ConfigError, match=r"fc1.weight has shape \(500, 800\), MnistNet needs \(500, 450\)"):
        load_pretrained(MnistNet(input_shape=(1, 24, 24)), MODELS / "mnist" / "mnistnet.pt")
    with pytest.raises(ConfigError, match="ShrinkBench ships no weights for model 'lenet_300_100'"):
        resolve_weights("shrinkbench", "lenet_300_100", SHARED, None, tmp_path / "cache")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_weights("nowhere.pt", "mnistnet", SHARED, None, tmp_path / "cache")


def test_a_pickled_object_is_never_run(tmp_path: Path) -> None:
    class Planted:
        def __reduce__(self):
            return (print, ("planted code ran",))

    path = tmp_path / "planted.pt"
    torch.save({"conv1.weight": Planted()}, path)
    with pytest.raises(ConfigError, match="weights_only"):
        pre.read_state_dict(path)


@needs_models
def test_downloads_are_checked_and_written_whole(tmp_path: Path, monkeypatch) -> None:
    """Online, ShrinkBench's URL is fetched into the cache; a wrong file is refused and leaves nothing behind."""
    served = {"file": MODELS / "mnist" / "mnistnet.pt"}
    urls = []

    def fake_download(url: str, dst: str, progress: bool = True) -> None:
        urls.append(url)
        shutil.copy(served["file"], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path, _ = resolve_weights("shrinkbench", "mnistnet", tmp_path / "no-data", None, tmp_path / "cache")
    assert urls == [SHRINKBENCH["mnistnet"].url] and path == tmp_path / "cache/shrinkbench-models/mnist/mnistnet.pt"
    # asked for ResNet-20, the server answers with MnistNet's file
    with pytest.raises(ConfigError, match="published sha256"):
        resolve_weights("shrinkbench", "resnet20", tmp_path / "no-data", None, tmp_path / "cache2")
    assert not [p for p in (tmp_path / "cache2").rglob("*") if p.is_file()]


@needs_models
def test_the_weights_checksum_is_part_of_the_trunk_id(make_cfg) -> None:
    from koopsweep.store import trunk_id

    base = ["model=mnistnet", "dataset=synthetic", f"paths.data_dir={SHARED}"]
    scratch = trunk_id(make_cfg(base))
    shipped = trunk_id(make_cfg([*base, "model.pretrained=shrinkbench"]))
    by_path = trunk_id(make_cfg([*base, f"model.pretrained={MODELS}/mnist/mnistnet.pt"]))
    assert scratch != shipped and shipped == by_path


def accuracy_as_shipped(make_cfg, model: str, dataset: str) -> float:
    """Test accuracy of ShrinkBench's network loaded as shipped: no training, no pruning."""
    from koopsweep.train.run import run_experiment

    overrides = [f"model={model}", f"dataset={dataset}", f"paths.data_dir={SHARED}", "model.pretrained=shrinkbench"]
    cfg = make_cfg([*overrides, "schedule.train=0it", "schedule.finetune=0it", "pruner=none"])
    return run_experiment(cfg)["metrics"]["final/test_acc"]


@needs_models
@needs_mnist
def test_mnistnet_as_shipped_scores_what_shrinkbench_reports(make_cfg) -> None:
    assert accuracy_as_shipped(make_cfg, "mnistnet", "mnist") == pytest.approx(0.9896, abs=5e-5)


@pytest.mark.slow
@needs_models
@pytest.mark.skipif(not (SHARED / "CIFAR-10-images").is_dir(), reason="the CIFAR-10 image copy is not present")
def test_resnet20_as_shipped_scores_80_7_on_the_jpeg_copy(make_cfg) -> None:
    assert accuracy_as_shipped(make_cfg, "resnet20", "cifar10") == pytest.approx(0.807, abs=1e-3)


def test_train_0_needs_pretrained_weights(make_cfg) -> None:
    from koopsweep.config.checks import check_config

    with pytest.raises(ConfigError, match="schedule.train=0 trains nothing"):
        check_config(make_cfg(["schedule.train=0it", "pruner=none", "schedule.finetune=0it"]))
