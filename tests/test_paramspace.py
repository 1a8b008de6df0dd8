import torch
from torch import nn

from koopsweep.prune.paramspace import ParamSpace, select_parameters


class TwoLayer(nn.Module):
    classifier_name = "head"

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 4)
        self.head = nn.Linear(4, 3)


def test_round_trip_and_layout():
    model = TwoLayer()
    space = ParamSpace.from_model(model, kinds=("weight", "bias"))
    assert space.names == ["body.weight", "body.bias"]  # classifier ignored by default
    vector = space.flatten(model)
    assert vector.shape == (24,)
    other = TwoLayer()
    with torch.no_grad():
        for tensor, part in zip(space.tensors(other), space.unflatten(vector).values()):
            tensor.copy_(part)
    assert torch.equal(space.flatten(other), vector)
    assert torch.equal(space.unflatten(vector)["body.weight"], model.body.weight.detach())


def test_layout_hash_tracks_names_and_shapes():
    a = ParamSpace(["x", "y"], [(2, 3), (4,)])
    assert a.layout_hash == ParamSpace(["x", "y"], [(2, 3), (4,)]).layout_hash
    assert a.layout_hash != ParamSpace(["y", "x"], [(4,), (2, 3)]).layout_hash
    assert a.layout_hash != ParamSpace(["x", "y"], [(3, 2), (4,)]).layout_hash


def test_normalisation_scales_stay_dense_as_in_shrinkbench() -> None:
    """ResNet-20's prunable weights are its conv kernels: BatchNorm's 1-D scales are never pruned."""
    from koopsweep.models import ResNet20

    model = ResNet20()
    names = select_parameters(model)
    convs = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert names == convs and not any(".bn" in n or n.startswith("bn") for n in names)
    assert (
        sum(model.get_parameter(n).numel() for n in names) == 267_696
    )  # 269,722 parameters less BatchNorm (2 x 688), the classifier (650)
