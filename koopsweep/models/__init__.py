"""The paper's networks (MnistNet, CIFAR ResNets), LeNet-300-100 and the FCN of the width study, built as
``Model(input_shape, num_classes, **model.kwargs)``."""

from koopsweep.models.fcn import FCN
from koopsweep.models.lenet import LeNet300100
from koopsweep.models.mnistnet import MnistNet
from koopsweep.models.resnet import CifarResNet, ResNet20, ResNet32, ResNet44, ResNet56

__all__ = ["FCN", "CifarResNet", "LeNet300100", "MnistNet", "ResNet20", "ResNet32", "ResNet44", "ResNet56"]
