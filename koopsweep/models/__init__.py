"""The paper's networks (MnistNet, CIFAR ResNets) and LeNet-300-100, built as ``Model(input_shape, num_classes)``."""

from koopsweep.models.lenet import LeNet300100
from koopsweep.models.mnistnet import MnistNet
from koopsweep.models.resnet import CifarResNet, ResNet20, ResNet32, ResNet44, ResNet56

__all__ = ["CifarResNet", "LeNet300100", "MnistNet", "ResNet20", "ResNet32", "ResNet44", "ResNet56"]
