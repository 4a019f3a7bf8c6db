"""MobileNets (students) from torchvision's builders, no pretrained weights, with the stem's
stride removed so that 28x28 and 8x8 inputs are not downsampled below a pixel."""

from torch import nn
from torchvision import models


def _adapt_stem(features: nn.Sequential, in_channels: int) -> None:
    stem = features[0][0]
    features[0][0] = nn.Conv2d(
        in_channels, stem.out_channels, kernel_size=3, stride=1, padding=1, bias=False
    )


def mobilenet_v2_050(in_channels: int, num_classes: int) -> nn.Module:
    """MobileNetV2 at half width (0.7M parameters)."""
    model = models.mobilenet_v2(weights=None, num_classes=num_classes, width_mult=0.5)
    _adapt_stem(model.features, in_channels)
    return model


def mobilenet_v3_small(in_channels: int, num_classes: int) -> nn.Module:
    """MobileNetV3-small (1.5M parameters, most of them in its 1024-wide classifier)."""
    model = models.mobilenet_v3_small(weights=None, num_classes=num_classes)
    _adapt_stem(model.features, in_channels)
    return model
