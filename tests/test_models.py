"""Models: exact parameter counts, the paper's layer shapes, forward shapes on both dataset shapes, classifiers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from torch import nn

from koopsweep.models import LeNet300100, MnistNet, ResNet20
from koopsweep.models.resnet import ShortcutA

MODELS = {"lenet_300_100": LeNet300100, "mnistnet": MnistNet, "resnet20": ResNet20}  # as conf/model/ names them


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


MNIST_SHAPE, CIFAR_SHAPE = (1, 28, 28), (3, 32, 32)
CONF_MODELS = Path(__file__).resolve().parent.parent / "conf" / "model"


@pytest.mark.parametrize(
    ("cls", "shape", "expected"),
    [
        (LeNet300100, MNIST_SHAPE, 266_610),  # 784*300+300 + 300*100+100 + 100*10+10
        (MnistNet, MNIST_SHAPE, 431_080),  # 520 + 25,050 + 400,500 + 5,010 (ShrinkBench)
        (ResNet20, CIFAR_SHAPE, 269_722),  # He et al. 2016 option A: "0.27M"
    ],
)
def test_parameter_counts(cls: type[nn.Module], shape: tuple[int, int, int], expected: int) -> None:
    assert count_parameters(cls(shape, 10)) == expected


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [MNIST_SHAPE, CIFAR_SHAPE])
@pytest.mark.parametrize("num_classes", [10, 7])
def test_forward_shapes_and_classifier(name: str, shape: tuple[int, int, int], num_classes: int) -> None:
    torch.manual_seed(0)
    model = MODELS[name](input_shape=shape, num_classes=num_classes)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, num_classes)
    assert torch.isfinite(out).all()
    classifier = model.get_submodule(model.classifier_name)
    assert isinstance(classifier, nn.Linear) and classifier.out_features == num_classes
    # the classifier is the last module applied: its output is the model's output
    seen = []
    classifier.register_forward_hook(lambda m, i, o: seen.append(o))
    out2 = model.eval()(torch.randn(2, *shape))
    assert torch.equal(seen[-1], out2)


def test_lenet_layers() -> None:
    model = LeNet300100(MNIST_SHAPE, 10)
    dims = [(m.in_features, m.out_features) for m in (model.fc1, model.fc2, model.fc3)]
    assert dims == [(784, 300), (300, 100), (100, 10)]
    assert model.classifier_name == "fc3"
    assert LeNet300100(CIFAR_SHAPE, 10).fc1.in_features == 3 * 32 * 32


def test_mnistnet_matches_shrinkbench() -> None:
    model = MnistNet(MNIST_SHAPE, 10)
    assert [n for n, _ in model.named_children()] == ["conv1", "conv2", "fc1", "fc2"]
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (1, 20, (5, 5))
    assert (model.conv2.in_channels, model.conv2.out_channels, model.conv2.kernel_size) == (20, 50, (5, 5))
    assert (model.fc1.in_features, model.fc1.out_features) == (800, 500)
    assert (model.fc2.in_features, model.fc2.out_features) == (500, 10)
    assert model.classifier_name == "fc2"
    # forward equals the reference composition, flattening in (C, H, W) order like ShrinkBench's view(-1, 800)
    x = torch.randn(4, *MNIST_SHAPE)
    F = torch.nn.functional
    h = F.max_pool2d(F.relu(model.conv1(x)), 2, 2)
    h = F.max_pool2d(F.relu(model.conv2(h)), 2, 2).reshape(-1, 4 * 4 * 50)
    assert torch.allclose(model(x), model.fc2(F.relu(model.fc1(h))))
    with pytest.raises(ValueError, match="16x16"):
        MnistNet((1, 12, 12), 10)


def test_resnet20_structure() -> None:
    model = ResNet20(CIFAR_SHAPE, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 1 stem + 3 stages x 3 blocks x 2; with fc that is 20 weighted layers
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64]
    assert all(c.bias is None for c in convs)
    # option A: shortcuts hold no parameters, and exactly two of them (stage entries) subsample
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2 and sum(count_parameters(s) for s in shortcuts) == 0
    named = dict(model.named_parameters())
    assert all(name.split(".")[-2].startswith(("conv", "bn", "fc")) for name in named)
    assert model.classifier_name == "fc" and model.fc.in_features == 64
    # Kaiming-normal init: std of a conv weight ~ sqrt(2 / fan_in)
    weight = model.layer3[0].conv2.weight
    expected = math.sqrt(2.0 / (64 * 9))
    assert abs(weight.std().item() / expected - 1) < 0.05


def test_shortcut_a_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = ShortcutA(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_resnet20_trains_in_eval_and_train_modes() -> None:
    torch.manual_seed(0)
    model = ResNet20(CIFAR_SHAPE, 10)
    x, y = torch.randn(8, *CIFAR_SHAPE), torch.arange(8) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.eval()(x).shape == (8, 10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_hydra_configs_build_the_registered_class(name: str) -> None:
    cfg = yaml.safe_load((CONF_MODELS / f"{name}.yaml").read_text())
    model = instantiate({"_target_": cfg["_target_"]}, input_shape=MNIST_SHAPE, num_classes=10)
    assert type(model) is MODELS[name]
