"""ResNets (teachers), with a CIFAR-style stem: small inputs (28x28, 8x8) keep their resolution
instead of losing 4x to ImageNet's 7x7 stride-2 convolution and max-pool."""

from torch import Tensor, nn
from torchvision.models import resnet18 as torchvision_resnet18
from torchvision.models.resnet import BasicBlock


def _small_input_stem(in_channels: int, width: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)


def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 (11M parameters), 3x3 stride-1 stem, no max-pool."""
    model = torchvision_resnet18(weights=None, num_classes=num_classes)
    model.conv1 = _small_input_stem(in_channels, 64)
    model.maxpool = nn.Identity()
    return model


class NarrowResNet(nn.Module):
    """A ResNet of torchvision BasicBlocks with one block per stage and chosen widths.

    Half the width of ResNet-18 and half its depth: a teacher that trains in minutes on a CPU
    while still clearly out-scoring the students. Modules are named like torchvision's (layer1..,
    fc) so hint layers read the same on every ResNet.
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = _small_input_stem(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        previous = widths[0]
        for index, width in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            downsample = None
            if stride != 1 or previous != width:
                downsample = nn.Sequential(
                    nn.Conv2d(previous, width, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(width),
                )
            self.add_module(f"layer{index}", BasicBlock(previous, width, stride, downsample))
            previous = width
        self.depth = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for index in range(1, self.depth + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def resnet10_w32(in_channels: int, num_classes: int) -> nn.Module:
    """Four stages of one BasicBlock, widths 32-64-128-256 (1.2M parameters)."""
    return NarrowResNet(in_channels, num_classes, widths=(32, 64, 128, 256))
