"""Architectures by name, each adapted to small single- or multi-channel images."""

from collections.abc import Callable

from torch import nn

from edgeforge_gpu.errors import unknown_name
from edgeforge_gpu.models.mobilenet import mobilenet_v2_050, mobilenet_v3_small
from edgeforge_gpu.models.resnet import resnet10_w32, resnet18
from edgeforge_gpu.models.small_cnn import small_cnn

Builder = Callable[[int, int], nn.Module]

ARCHITECTURES: dict[str, Builder] = {
    "resnet18": resnet18,
    "resnet10_w32": resnet10_w32,
    "mobilenet_v2_050": mobilenet_v2_050,
    "mobilenet_v3_small": mobilenet_v3_small,
    "small_cnn": small_cnn,
}


def build_model(architecture: str, in_channels: int, num_classes: int) -> nn.Module:
    """A freshly initialised model; the seed of torch's global RNG decides its weights."""
    try:
        builder = ARCHITECTURES[architecture]
    except KeyError:
        raise unknown_name("architecture", architecture, ARCHITECTURES) from None
    return builder(in_channels, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
