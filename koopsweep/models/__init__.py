"""Networks of the paper (MnistNet, ResNet-20) and LeNet-300-100, all built as ``Model(input_shape, num_classes)``."""

from koopsweep.models.lenet import LeNet300100
from koopsweep.models.mnistnet import MnistNet
from koopsweep.models.resnet import ResNet20

__all__ = ["LeNet300100", "MnistNet", "ResNet20"]
